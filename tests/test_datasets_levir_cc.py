"""LEVIR-CC loader (three forms of the annotations) and the pure pieces of its `rsicc` protocol, on the real token files
of ../shared/data/levir-cc (skipped when absent) and on generated files in the authors' layouts; the protocol's
oracle (tests/_rsicc_reference.py) on hand-checkable cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from idcbench.data import load_dataset
from idcbench.datasets.levir_cc_protocol import (NO_CHANGE_PHRASES, Vocabulary, encode, index_strings, s_m,
                                                 tokenize)
from idcbench.datasets.describe import summarize
from idcbench.errors import UserError
from idcbench.ids import align_ids

from _rsicc_reference import indices as oracle_indices
from _rsicc_reference import is_no_change as oracle_is_no_change
from _rsicc_reference import rsicc_scores

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "levir-cc"
needs_shared = pytest.mark.skipif(not (SHARED / "levir_cc_tokens.json").exists(),
                                  reason="../shared/data/levir-cc absent")

# SOURCES.md: pairs per split (x5 references), and pairs whose 5 references are all no-change sentences
PAIRS = {"train": 6815, "val": 1333, "test": 1929}
NO_CHANGE_PAIRS = {"train": 3408, "val": 666, "test": 965}
SPECIAL = {"<START>", "<END>"}


@pytest.fixture(scope="module")
def meteor():
    """One pycocoevalcap METEOR (one JVM) for the module's oracle runs."""
    from pycocoevalcap.meteor.meteor import Meteor

    return Meteor()


@pytest.fixture(scope="module")
def shared():
    if not (SHARED / "levir_cc_tokens.json").exists():
        pytest.skip("../shared/data/levir-cc absent")
    raw = json.loads((SHARED / "levir_cc_tokens.json").read_text())
    return raw, load_dataset("levir-cc", SHARED)


def write_release(root: Path, records: list[dict]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "LevirCCcaptions.json").write_text(json.dumps({"images": records}))
    return root


def record(name: str, raws: list[str], **extra) -> dict:
    return {"filename": name, "sentences": [{"raw": r, "tokens": r.split()} for r in raws], **extra}


# ------------------------------------------------------------------------------------------------ the shared files
@needs_shared
def test_counts_references_and_subsets_of_the_token_files(shared):
    raw, dataset = shared
    assert dataset.form == "assembled" and dataset.splits() == ["train", "val", "test"]
    for split, n in PAIRS.items():
        examples = dataset.examples(split)
        assert len(examples) == n == len(raw["splits"][split])
        assert [e.id for e in examples] == raw["splits"][split]  # the authors' file names, in their order
        assert all(len(e.references) == 5 for e in examples)
        assert {e.id: list(e.references) for e in examples} == {
            name: [" ".join(t for t in tokens if t not in SPECIAL) for tokens in raw["tokens"][name]]
            for name in raw["splits"][split]}
        subsets = dataset.subsets(split)
        all_no_change = {name for name in raw["splits"][split]
                         if all(" ".join(t[1:-1]) in NO_CHANGE_PHRASES for t in raw["tokens"][name])}
        assert len(subsets["no-change"]) == NO_CHANGE_PAIRS[split] == len(all_no_change)
        assert set(subsets["no-change"]) == all_no_change  # first-reference rule == SOURCES.md's all-5 rule here
        assert len(subsets["change"]) == n - NO_CHANGE_PAIRS[split]
        assert subsets["total"] == [e.id for e in examples]
    e = dataset.examples("test")[0]
    assert e.id == "test_000001.png" and e.tags == {"kind": "no-change"}
    assert (e.before, e.after) == (SHARED / "images/test/A/test_000001.png", SHARED / "images/test/B/test_000001.png")
    summary = summarize(dataset)
    assert {s: (v["examples"], v["references"]) for s, v in summary.items()} == {s: (n, 5 * n)
                                                                                 for s, n in PAIRS.items()}


@needs_shared
def test_the_authors_build_vocab_gives_their_vocab_json(shared, tmp_path):
    _, dataset = shared
    shipped = json.loads((SHARED / "vocab.json").read_text())
    assert dataset.vocabulary.index == shipped and len(shipped) == 468
    # every split's captions, words seen MORE than 5 times, sorted: exactly the shipped file
    assert dataset.build_vocabulary().index == shipped
    # threshold 4 is the rule of RSCaMa's data/LEVIR_CC/vocab.json (501 entries; not in ../shared)
    assert len(dataset.build_vocabulary(4).index) == 501
    # the train split alone is NOT how the authors build it
    train_only = Vocabulary.build(r.split() for e in dataset.examples("train") for r in e.references)
    assert train_only.index != shipped
    # without vocab.json the loader builds the same vocabulary, and the run identity (fingerprint) is the same
    (tmp_path / "levir_cc_tokens.json").symlink_to(SHARED / "levir_cc_tokens.json")
    built = load_dataset("levir-cc", tmp_path)
    assert built.vocabulary.index == shipped and built.fingerprint() == dataset.fingerprint()
    assert built.build_vocabulary(4).sha256 != dataset.fingerprint()


@needs_shared
def test_reference_text_tokenizes_back_to_the_authors_tokens(shared):
    raw, dataset = shared
    vocab = dataset.vocabulary
    checked = 0
    for split in PAIRS:
        for e in dataset.examples(split):
            for text, tokens in zip(e.references, raw["tokens"][e.id]):
                words = [t for t in tokens if t not in SPECIAL]
                assert tokenize(text) == tokenize(text, lowercase=False) == words
                # the authors' encoding (with <START>/<END>, then those removed) == encode(text)
                assert encode(text, vocab) == [i for i in vocab.encode(tokens) if i not in (2, 3)]
                checked += 1
    assert checked == 5 * sum(PAIRS.values()) == 50385


@needs_shared
def test_repository_form_reads_the_same_pairs(shared, tmp_path):
    raw, dataset = shared
    (tmp_path / "tokens").mkdir()
    names = raw["splits"]["test"]
    (tmp_path / "test.txt").write_text("".join(n + "\n" for n in names))
    for n in names:
        (tmp_path / "tokens" / f"{n[:-4]}.txt").write_text(json.dumps(raw["tokens"][n]))
    (tmp_path / "vocab.json").write_bytes((SHARED / "vocab.json").read_bytes())
    repo = load_dataset("levir-cc", tmp_path)
    assert repo.form == "repository" and repo.splits() == ["test"]
    assert [(e.id, e.references, e.tags) for e in repo.examples("test")] == \
           [(e.id, e.references, e.tags) for e in dataset.examples("test")]
    assert repo.fingerprint() == dataset.fingerprint()
    (tmp_path / "tokens" / f"{names[7][:-4]}.txt").unlink()
    with pytest.raises(UserError, match=rf"token file of {names[7]} \(listed in test.txt\) not found"):
        load_dataset("levir-cc", tmp_path).examples("test")


@needs_shared
def test_release_form_made_from_the_token_files_reads_the_same(shared, tmp_path):
    """LevirCCcaptions.json is not in ../shared: rebuild one whose raw captions tokenize to the authors' tokens
    (a trailing " ." as in the release, which the authors' preprocessing deletes)."""
    raw, dataset = shared
    records = [record(n, [" ".join(t[1:-1]) + " ." for t in raw["tokens"][n]], split=s, changeflag=0)
               for s in ("test", "train", "val") for n in raw["splits"][s]]
    release = load_dataset("levir-cc", write_release(tmp_path, records))
    assert release.form == "release" and release.splits() == ["train", "val", "test"]
    for split in PAIRS:
        assert [(e.id, e.references, e.tags) for e in release.examples(split)] == \
               [(e.id, e.references, e.tags) for e in dataset.examples(split)]
    assert release.vocabulary.index == dataset.vocabulary.index  # built, no vocab.json here


@needs_shared
def test_index_strings_equal_the_oracle_and_the_subsets_its_rule(shared):
    _, dataset = shared
    vocab = dataset.vocabulary.index
    examples = dataset.examples("test")
    refs = dataset.references("test")
    noisy = ["A new ROAD is built, near the xyzzy houses.", "there is no difference", "", "  two   buildings ; gone?"]
    preds = {e.id: noisy[k % 5 - 1] if k % 5 else e.references[k % 3] for k, e in enumerate(examples)}
    gts, res = index_strings(refs, preds, dataset.vocabulary)
    assert list(gts) == list(res) == [e.id for e in examples]
    for e in examples:
        assert res[e.id] == [" ".join(map(str, oracle_indices(preds[e.id], vocab)))]
        assert gts[e.id] == [" ".join(map(str, oracle_indices(r, vocab))) for r in e.references]
        assert (e.tags["kind"] == "no-change") == oracle_is_no_change(oracle_indices(e.references[0], vocab), vocab)
    # lower-cased; "," (never in the release) and "xyzzy" are <UNK> (1); "." deleted
    assert res[examples[1].id] == [f"{vocab['a']} {vocab['new']} {vocab['road']} {vocab['is']} {vocab['built']} 1 "
                                   f"{vocab['near']} {vocab['the']} 1 {vocab['houses']}"]
    assert res[examples[3].id] == [""]


@needs_shared
@pytest.mark.java
def test_oracle_on_the_test_split(shared, meteor):
    """Every pair captioned with one of its own references: BLEU-1..4 and ROUGE-L are 1 on every subset."""
    _, dataset = shared
    preds = {e.id: e.references[k % 5] for k, e in enumerate(dataset.examples("test"))}
    scores = rsicc_scores(dataset, "test", preds, meteor)
    assert set(scores) == {"total", "change", "no-change"}
    for subset, values in scores.items():
        for metric in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4"):
            assert values[metric] == pytest.approx(1.0, abs=1e-6), (subset, metric)
        assert values["ROUGE-L"] == 1.0
        assert 0.9 < values["METEOR"] <= 1.0
        assert values["S*m"] == s_m(values)


# ------------------------------------------------------------------------------------------- generated fixtures
@pytest.fixture()
def small(tmp_path: Path):
    """Three test pairs and two train pairs in the release layout; vocabulary words: those seen > 5 times."""
    common = "a road is built near the houses"
    records = [
        record("test_000001.png", ["there is no difference ."] + ["the two scenes seem identical ."] * 4, split="test"),
        record("test_000002.png", [f"{common} ."] * 5, changeflag=1),  # split from the file name
        record("test_000004.png", ["Two houses, a pool; and trees ?"] * 5, split="test"),
        record("train_000001.png", [f"{common}."] * 5, split="train"),
        record("train_000002.png", ["the scene is the same as before"] * 5, split="train"),
    ]
    # the words of the no-change sentences must be in the vocabulary (more than 5 times)
    records += [record(f"train_{k:06d}.png", list(NO_CHANGE_PHRASES), split="train") for k in range(10, 16)]
    return write_release(tmp_path / "levir", records)


def test_release_layout_ids_references_tags_and_images(small: Path):
    dataset = load_dataset("levir-cc", small)
    assert dataset.form == "release" and dataset.splits() == ["train", "val", "test"][::2]
    test = dataset.examples("test")
    assert [e.id for e in test] == ["test_000001.png", "test_000002.png", "test_000004.png"]
    assert test[0].references[:2] == ("there is no difference", "the two scenes seem identical")
    assert test[1].references == ("a road is built near the houses",) * 5
    assert test[2].references[0] == "Two houses , a pool ; and trees"  # the authors do not lower-case the release
    assert [e.tags["kind"] for e in test] == ["no-change", "change", "change"]
    assert dataset.subsets("test") == {"total": [e.id for e in test], "change": ["test_000002.png", "test_000004.png"],
                                       "no-change": ["test_000001.png"]}
    assert test[1].before == small / "images" / "test" / "A" / "test_000002.png"
    assert test[1].after == small / "images" / "test" / "B" / "test_000002.png"
    vocab = dataset.vocabulary.index  # built: words seen more than 5 times over all splits
    phrase_words = {w for p in NO_CHANGE_PHRASES for w in p.split()}
    assert list(vocab) == ["<NULL>", "<UNK>", "<START>", "<END>", *sorted(phrase_words | {"a", "built", "houses",
                                                                                            "near", "road"})]


def test_ids_other_code_writes_align_within_the_split(small: Path):
    dataset = load_dataset("levir-cc", small)
    ids = [e.id for e in dataset.examples("test")]
    predictions = {"test_000001": "x", "TEST_2.png": "y", "test_000004.png": "z", "val_000001.png": "w", "000002": "v"}
    aligned = align_ids(predictions, ids, key=dataset.id_key)
    assert aligned == {"test_000001.png": "x", "test_000002.png": "y", "test_000004.png": "z",
                       "val_000001.png": "w", "000002": "v"}  # another split's id and a bare number match nothing


def test_vocab_json_at_the_root_is_used_and_is_the_run_identity(small: Path):
    before = load_dataset("levir-cc", small).fingerprint()
    phrase_words = sorted({w for p in NO_CHANGE_PHRASES for w in p.split()})
    mapping = {"<NULL>": 0, "<UNK>": 1, "<START>": 2, "<END>": 3, "road": 4, "built": 5,
               **{w: k for k, w in enumerate(phrase_words, 6)}}
    (small / "vocab.json").write_text(json.dumps(mapping))
    after = load_dataset("levir-cc", small)
    assert after.vocabulary.index == mapping and after.fingerprint() != before
    gts, res = index_strings({"p": ["a road is built"]}, {"p": "The road was built."}, after.vocabulary)
    assert (gts, res) == ({"p": [f"1 4 {mapping['is']} 5"]}, {"p": [f"{mapping['the']} 4 1 5"]})
    del mapping["seem"]
    (small / "vocab.json").write_text(json.dumps(mapping))
    with pytest.raises(UserError, match="vocab.json: lacks seem, words of the no-change sentences"):
        load_dataset("levir-cc", small).fingerprint()
    # RSICC's WORDMAP convention: <pad> 0, then <unk> / <start> / <end> after the words
    wordmap = Vocabulary.from_mapping({"road": 1, "built": 2, "<unk>": 3, "<start>": 4, "<end>": 5, "<pad>": 0})
    assert encode("<start> road xyz built <end>", wordmap) == [1, 3, 2]


@pytest.mark.java
def test_oracle_hand_checkable(small: Path, meteor):
    """Perfect captions score BLEU 1 and ROUGE-L 1; two different words the vocabulary lacks are both <UNK> and
    so match each other (the index protocol's doing); a subset only holds its own pairs."""
    dataset = load_dataset("levir-cc", small)
    perfect = {e.id: e.references[0] for e in dataset.examples("test")}
    scores = rsicc_scores(dataset, "test", perfect, meteor)
    for subset in ("total", "change", "no-change"):
        assert scores[subset]["BLEU-4"] == pytest.approx(1.0, abs=1e-6)
        assert scores[subset]["ROUGE-L"] == 1.0
    # "Two houses , a pool ; and trees": ",", "pool", ";", "and", "trees" are <UNK>, and so are "lake" and "or"
    unk = dict(perfect, **{"test_000004.png": "Two houses, a lake; or rivers"})
    assert rsicc_scores(dataset, "test", unk, meteor)["change"]["BLEU-4"] == pytest.approx(1.0, abs=1e-6)
    wrong_change = dict(perfect, **{"test_000002.png": "almost nothing has changed",
                                    "test_000004.png": "no change has occurred"})
    scores = rsicc_scores(dataset, "test", wrong_change, meteor)
    assert scores["no-change"]["BLEU-1"] == pytest.approx(1.0, abs=1e-6)
    assert scores["change"]["BLEU-1"] < 1e-6 and scores["change"]["ROUGE-L"] == 0.0
    assert scores["total"]["BLEU-1"] < scores["no-change"]["BLEU-1"]
    for values in scores.values():
        assert values["S*m"] == pytest.approx((values["BLEU-4"] + values["METEOR"] + values["ROUGE-L"]
                                               + values["CIDEr-D"]) / 4, abs=1e-15)


def test_bad_annotations_are_one_line_errors(tmp_path: Path):
    with pytest.raises(UserError, match="data root .* not found.*idcbench data info levir-cc"):
        load_dataset("levir-cc", tmp_path / "nowhere")
    with pytest.raises(UserError, match="annotation file not found: .*LevirCCcaptions.json"):
        load_dataset("levir-cc", tmp_path)
    root = write_release(tmp_path / "a", [record("test_000001.png", ["a"]), record("test_000001.png", ["b"])])
    with pytest.raises(UserError, match=r"images\[1\]: 'test_000001.png' is listed twice"):
        load_dataset("levir-cc", root).examples("test")
    root = write_release(tmp_path / "b", [record("x.png", ["a"])])
    with pytest.raises(UserError, match=r"images\[0\] \(x.png\): split 'x.png' is not one of train, val, test"):
        load_dataset("levir-cc", root).splits()
    root = write_release(tmp_path / "c", [{"filename": "test_000001.png", "sentences": [{"tokens": ["a"]}]}])
    with pytest.raises(UserError, match="sentences' 'raw': expected a list of caption strings"):
        load_dataset("levir-cc", root).examples("test")
    (root / "LevirCCcaptions.json").write_text('{"images": [}')
    with pytest.raises(UserError, match=r"LevirCCcaptions.json: line 1, column 13: invalid JSON"):
        load_dataset("levir-cc", root).examples("test")
    root = write_release(tmp_path / "d", [record("test_000001.png", ["a"])])
    (root / "vocab.json").write_text('{"a": 0, "b": 1}')
    with pytest.raises(UserError, match="vocab.json: has neither <NULL>, <UNK>, <START>, <END>"):
        load_dataset("levir-cc", root).fingerprint()
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "levir_cc_tokens.json").write_text(json.dumps({"splits": {"test": ["t.png"]}, "tokens": {}}))
    with pytest.raises(UserError, match="no tokens for 't.png' of split 'test'"):
        load_dataset("levir-cc", tmp_path / "e").examples("test")
    with pytest.raises(UserError, match="no prediction for 1 of 2 pairs"):
        index_strings({"a": ["x"], "b": ["y"]}, {"a": "x"}, Vocabulary.build([]))
