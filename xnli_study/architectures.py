"""The architectures of the encoders a user will name (STUDY.md section 1), written here so that
their size is known without the hub: ``xnli-study plan`` counts their parameters, the throughput
benchmark builds them with random weights, and the params checks know their depth offline."""

from __future__ import annotations

#: the architectures of the encoders a user will name (STUDY.md section 1), as in each hub
#: repository's config.json; the benchmark builds them with random weights from these alone
KNOWN_ARCHITECTURES: dict[str, dict] = {
    "FacebookAI/xlm-roberta-base": dict(model_type="xlm-roberta", vocab_size=250_002, hidden_size=768,
                                        num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                                        max_position_embeddings=514, type_vocab_size=1),
    "FacebookAI/xlm-roberta-large": dict(model_type="xlm-roberta", vocab_size=250_002, hidden_size=1024,
                                         num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                                         max_position_embeddings=514, type_vocab_size=1),
    "google-bert/bert-base-multilingual-cased": dict(model_type="bert", vocab_size=119_547, hidden_size=768,
                                                     num_hidden_layers=12, num_attention_heads=12,
                                                     intermediate_size=3072, max_position_embeddings=512,
                                                     type_vocab_size=2),
    "distilbert/distilbert-base-multilingual-cased": dict(model_type="distilbert", vocab_size=119_547, dim=768,
                                                          n_layers=6, n_heads=12, hidden_dim=3072,
                                                          max_position_embeddings=512),
    "microsoft/mdeberta-v3-base": dict(model_type="deberta-v2", vocab_size=251_000, hidden_size=768,
                                       num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                                       max_position_embeddings=512, type_vocab_size=0, relative_attention=True,
                                       position_buckets=256, norm_rel_ebd="layer_norm", share_att_key=True,
                                       pos_att_type=["p2c", "c2p"], position_biased_input=False),
}
