"""The paper's datasets: exact prompt/answer formatting in every format, splits, caps, errors."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pandas as pd
import pytest

from crossgen.config import TaskConfig
from crossgen.data import Example
from crossgen.errors import InputError
from crossgen.tasks import get_task, load_task, task_names
from crossgen.tasks.base import HELD_OUT_SHARE
from crossgen.tasks.books import passages, split_passage

SCIQ = [
    {
        "question": "What type of organism is commonly used in preparation of foods such as cheese and yogurt?",
        "distractor3": "viruses",
        "distractor1": "protozoa",
        "distractor2": "gymnosperms",
        "correct_answer": "mesophilic organisms",
        "support": "Mesophiles grow best in moderate temperature.",
    },
    {
        "question": "What phenomenon makes global winds blow northeast to southwest?",
        "distractor3": "tropical effect",
        "distractor1": "muon effect",
        "distractor2": "centrifugal effect",
        "correct_answer": "coriolis effect",
        "support": "",
    },
    {
        "question": "Changes from a less-ordered state to a more-ordered state are what? ",
        "distractor3": "endothermic",
        "distractor1": "unbalanced",
        "distractor2": "reactive",
        "correct_answer": " exothermic ",
        "support": "Heat is released.",
    },
]
SCIQ_EXPECTED = [
    (
        "Question: What type of organism is commonly used in preparation of foods such as cheese and yogurt?\nAnswer:",
        " mesophilic organisms",
    ),
    ("Question: What phenomenon makes global winds blow northeast to southwest?\nAnswer:", " coriolis effect"),
    ("Question: Changes from a less-ordered state to a more-ordered state are what?\nAnswer:", " exothermic"),
]
GSM8K = [
    {
        "question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
        "How many clips did Natalia sell altogether in April and May?",
        "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips "
        "altogether in April and May.\n#### 72",
    },
    {
        "question": "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. "
        "How much did she earn?",
        "answer": "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = "
        "$<<0.2*50=10>>10.\n#### 10",
    },
]
GSM8K_EXPECTED = [
    (
        "Question: Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
        "How many clips did Natalia sell altogether in April and May?\nAnswer:",
        " Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether in "
        "April and May.\n#### 72",
    ),
    (
        "Question: Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. "
        "How much did she earn?\nAnswer:",
        " Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = "
        "$<<0.2*50=10>>10.\n#### 10",
    ),
]
# hub schema records (as `datasets` gives them and exports them)
ARC_HUB = [
    {
        "id": "Mercury_7175875",
        "question": "An astronomer observes that a planet rotates faster after a meteorite "
        "impact. Which is the most likely effect of this increase in rotation?",
        "choices": {
            "text": [
                "Planetary density will decrease.",
                "Planetary years will become longer.",
                "Planetary days will become shorter.",
                "Planetary gravity will become stronger.",
            ],
            "label": ["A", "B", "C", "D"],
        },
        "answerKey": "C",
    },
    {
        "id": "NYSEDREGENTS_2015_4_8",
        "question": "Which object is the best conductor of electricity?",
        "choices": {
            "text": ["a wax crayon", "a plastic spoon", "a rubber eraser", "an iron nail"],
            "label": ["1", "2", "3", "4"],
        },
        "answerKey": "4",
    },
    # labels are letters, key a digit: read as a position (3 -> C)
    {
        "id": "mix_1",
        "question": "Which gas do plants take in?",
        "choices": {"text": ["oxygen", "helium", "carbon dioxide"], "label": ["A", "B", "C"]},
        "answerKey": "3",
    },
    # labels are digits, key a letter: read as a position (B -> 2)
    {
        "id": "mix_2",
        "question": "Which is a mammal?",
        "choices": {"text": ["shark", "whale", "trout"], "label": ["1", "2", "3"]},
        "answerKey": "B",
    },
]
ARC_EXPECTED = [
    (
        "Question: An astronomer observes that a planet rotates faster after a meteorite impact. Which is the most "
        "likely effect of this increase in rotation?\nChoices: (A) Planetary density will decrease. (B) Planetary "
        "years will become longer. (C) Planetary days will become shorter. (D) Planetary gravity will become "
        "stronger.\nAnswer:",
        " Planetary days will become shorter.",
    ),
    (
        "Question: Which object is the best conductor of electricity?\nChoices: (A) a wax crayon (B) a plastic spoon "
        "(C) a rubber eraser (D) an iron nail\nAnswer:",
        " an iron nail",
    ),
    (
        "Question: Which gas do plants take in?\nChoices: (A) oxygen (B) helium (C) carbon dioxide\nAnswer:",
        " carbon dioxide",
    ),
    ("Question: Which is a mammal?\nChoices: (A) shark (B) whale (C) trout\nAnswer:", " whale"),
]


def arc_original(record: dict) -> dict:
    """The same question in the original release's JSONL layout."""
    choices = [{"text": t, "label": lab} for t, lab in zip(record["choices"]["text"], record["choices"]["label"])]
    return {
        "id": record["id"],
        "question": {"stem": record["question"], "choices": choices},
        "answerKey": record["answerKey"],
    }


def pairs(examples: list[Example]) -> list[tuple[str, str]]:
    return [(e.prompt, e.answer) for e in examples]


def write_jsonl(path, records) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def local(name: str, path, **kw) -> TaskConfig:
    return TaskConfig(name=name, source="local", path=path, **kw)


@pytest.fixture
def fake_hub(monkeypatch):
    """datasets.load_dataset answered from a dict {(hub_id, config, split): rows}; calls are logged
    as (hub_id, config, split), with a fourth item "streaming" for streamed loads, which get an
    IterableDataset as the real call does."""
    import datasets

    tables: dict = {}
    calls: list = []

    def load_dataset(path, name=None, split=None, streaming=False, **kw):
        calls.append((path, name, split, "streaming") if streaming else (path, name, split))
        if (path, name, split) not in tables:
            raise ConnectionError(f"Couldn't reach '{path}' on the Hub (OfflineModeIsEnabled)")
        table = datasets.Dataset.from_list(tables[(path, name, split)])
        return table.to_iterable_dataset() if streaming else table

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return tables, calls


# --- SciQ -----------------------------------------------------------------------------------


def test_sciq_hub(fake_hub):
    tables, calls = fake_hub
    tables[("allenai/sciq", None, "train")] = SCIQ[:2]
    tables[("allenai/sciq", None, "test")] = SCIQ[2:]
    task = load_task(TaskConfig(name="sciq"), seed=0)
    assert task.name == "sciq" and not get_task("sciq").narrative
    assert pairs(task.train) == SCIQ_EXPECTED[:2]
    assert pairs(task.test) == SCIQ_EXPECTED[2:]
    assert {e.source for e in task.train + task.test} == {"real:sciq"}
    assert task.train[0].text == SCIQ_EXPECTED[0][0] + SCIQ_EXPECTED[0][1]
    assert calls == [("allenai/sciq", None, "train"), ("allenai/sciq", None, "test")]
    # the distractors are the options, the correct answer last (as evaluation harnesses order them)
    assert task.train[0].meta == {"choices": ("protozoa", "gymnosperms", "viruses", "mesophilic organisms"), "gold": 3}
    assert task.test[0].meta["choices"][3] == "exothermic"


def test_sciq_original_release_folder_uses_valid_as_test(tmp_path):
    folder = tmp_path / "SciQ dataset-2 3"
    folder.mkdir()
    (folder / "train.json").write_text(json.dumps(SCIQ[:2], indent=2))
    (folder / "valid.json").write_text(json.dumps(SCIQ[2:], indent=2))
    task = load_task(local("sciq", folder), seed=0)
    assert pairs(task.train) == SCIQ_EXPECTED[:2]
    assert pairs(task.test) == SCIQ_EXPECTED[2:]


def test_sciq_hub_export_parquet_shards_and_json_lines(tmp_path):
    folder = tmp_path / "parquet"
    folder.mkdir()
    pd.DataFrame(SCIQ[:1]).to_parquet(folder / "train-00000-of-00002.parquet")
    pd.DataFrame(SCIQ[1:2]).to_parquet(folder / "train-00001-of-00002.parquet")
    pd.DataFrame(SCIQ[2:]).to_parquet(folder / "test-00000-of-00001.parquet")
    (folder / "README.md").write_text("not data")
    task = load_task(local("sciq", folder), seed=0)
    assert pairs(task.train) == SCIQ_EXPECTED[:2]
    assert pairs(task.test) == SCIQ_EXPECTED[2:]
    # datasets' to_json writes JSON lines even into a .json file
    lines = tmp_path / "lines"
    write_jsonl(lines / "train.json", SCIQ[:2])
    write_jsonl(lines / "test.json", SCIQ[2:])
    assert pairs(load_task(local("sciq", lines), seed=0).test) == SCIQ_EXPECTED[2:]


def test_single_file_is_split_90_10_independent_of_seed(tmp_path):
    records = [dict(SCIQ[0], question=f"Question number {i}?", correct_answer=f"answer {i}") for i in range(30)]
    pd.DataFrame(records).to_csv(tmp_path / "sciq.csv", index=False)
    a = load_task(local("sciq", tmp_path / "sciq.csv"), seed=0)
    b = load_task(local("sciq", tmp_path / "sciq.csv"), seed=7)
    assert len(a.test) == round(30 * HELD_OUT_SHARE) == 3 and len(a.train) == 27
    assert pairs(a.test) == pairs(b.test) and pairs(a.train) == pairs(b.train)
    everything = sorted(pairs(a.train) + pairs(a.test))
    assert everything == sorted((f"Question: Question number {i}?\nAnswer:", f" answer {i}") for i in range(30))
    # file order is kept inside each split
    numbers = [int(p.split("?")[0].split()[-1]) for p, _ in pairs(a.train)]
    assert numbers == sorted(numbers)


def test_caps_train_seeded_subset_in_order_test_first_n(tmp_path):
    records = [{"question": f"q{i}", "answer": f"a {i} #### {i}"} for i in range(40)]
    write_jsonl(tmp_path / "g" / "train.jsonl", records)
    write_jsonl(tmp_path / "g" / "test.jsonl", records[:10])
    a = load_task(local("gsm8k", tmp_path / "g", train_size=5, test_size=3), seed=1)
    b = load_task(local("gsm8k", tmp_path / "g", train_size=5, test_size=3), seed=1)
    c = load_task(local("gsm8k", tmp_path / "g", train_size=5, test_size=3), seed=2)
    assert pairs(a.test) == [(f"Question: q{i}\nAnswer:", f" a {i} #### {i}") for i in range(3)]
    assert pairs(a.train) == pairs(b.train) and pairs(a.train) != pairs(c.train)
    numbers = [int(p[len("Question: q") : -len("\nAnswer:")]) for p, _ in pairs(a.train)]
    assert len(numbers) == 5 and numbers == sorted(numbers)


# --- GSM8K ----------------------------------------------------------------------------------


def test_gsm8k_hub_uses_main_config(fake_hub):
    tables, calls = fake_hub
    tables[("openai/gsm8k", "main", "train")] = GSM8K[:1]
    tables[("openai/gsm8k", "main", "test")] = GSM8K[1:]
    task = load_task(TaskConfig(name="gsm8k"), seed=0)
    assert pairs(task.train) == GSM8K_EXPECTED[:1] and pairs(task.test) == GSM8K_EXPECTED[1:]
    assert [e.meta for e in task.train + task.test] == [{"gold": "72"}, {"gold": "10"}]
    assert calls == [("openai/gsm8k", "main", "train"), ("openai/gsm8k", "main", "test")]


def test_gsm8k_original_jsonl_release(tmp_path):
    write_jsonl(tmp_path / "grade_school_math" / "train.jsonl", GSM8K[:1])
    write_jsonl(tmp_path / "grade_school_math" / "test.jsonl", GSM8K[1:])
    task = load_task(local("gsm8k", tmp_path / "grade_school_math"), seed=0)
    assert pairs(task.train) == GSM8K_EXPECTED[:1] and pairs(task.test) == GSM8K_EXPECTED[1:]
    assert task.test[0].source == "real:gsm8k"


# --- ARC ------------------------------------------------------------------------------------


def test_arc_hub_schema_keys_labels_and_mismatch(fake_hub):
    tables, calls = fake_hub
    tables[("allenai/ai2_arc", "ARC-Challenge", "train")] = ARC_HUB[:2]
    tables[("allenai/ai2_arc", "ARC-Challenge", "test")] = ARC_HUB[2:]
    task = load_task(TaskConfig(name="arc_challenge"), seed=0)
    assert pairs(task.train) == ARC_EXPECTED[:2] and pairs(task.test) == ARC_EXPECTED[2:]
    assert [e.meta["gold"] for e in task.train + task.test] == [2, 3, 2, 1]
    assert task.test[0].meta["choices"] == ("oxygen", "helium", "carbon dioxide")
    assert calls[0] == ("allenai/ai2_arc", "ARC-Challenge", "train")


def test_arc_easy_hub_config_and_custom_hub_id(fake_hub):
    tables, calls = fake_hub
    tables[("me/arc-copy", "ARC-Easy", "train")] = ARC_HUB
    tables[("me/arc-copy", "ARC-Easy", "test")] = ARC_HUB[:1]
    task = load_task(TaskConfig(name="arc_easy", hub_id="me/arc-copy"), seed=0)
    assert pairs(task.train) == ARC_EXPECTED and calls[-1] == ("me/arc-copy", "ARC-Easy", "test")


def test_arc_original_jsonl_release(tmp_path):
    folder = tmp_path / "ARC-Easy"
    write_jsonl(folder / "ARC-Easy-Train.jsonl", [arc_original(r) for r in ARC_HUB[:3]])
    write_jsonl(folder / "ARC-Easy-Dev.jsonl", [arc_original(ARC_HUB[0])])
    write_jsonl(folder / "ARC-Easy-Test.jsonl", [arc_original(ARC_HUB[3])])
    # the release ships a CSV next to each JSONL: the JSONL is read
    (folder / "ARC-Easy-Test.csv").write_text("junk\n")
    task = load_task(local("arc_easy", folder), seed=0)
    assert pairs(task.train) == ARC_EXPECTED[:3]
    assert pairs(task.test) == ARC_EXPECTED[3:]


def test_arc_hub_export_parquet_and_csv(tmp_path):
    from datasets import Dataset

    ds = Dataset.from_list(ARC_HUB)
    ds.to_parquet(str(tmp_path / "train.parquet"))
    ds.to_csv(str(tmp_path / "test.csv"), index=False)  # choices become a numpy repr string
    assert "array([" in (tmp_path / "test.csv").read_text()
    task = load_task(local("arc_easy", tmp_path), seed=0)
    assert pairs(task.train) == ARC_EXPECTED
    assert pairs(task.test) == ARC_EXPECTED


def test_arc_original_csv_with_inline_choices(tmp_path):
    rows = [
        {
            "questionID": "Mercury_1",
            "AnswerKey": "B",
            "question": "George wants to warm his hands quickly by rubbing them. "
            "Which skin surface will produce the most heat? "
            "(A) dry palms (B) wet palms (C) palms covered with oil (D) palms covered with lotion",
        },
        {"questionID": "NY_2", "AnswerKey": "2", "question": "Which is a liquid? (1) ice (2) milk (3) steam"},
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "ARC-Challenge-Train.csv", index=False)
    pd.DataFrame(rows[1:]).to_csv(tmp_path / "ARC-Challenge-Test.csv", index=False)
    task = load_task(local("arc_challenge", tmp_path), seed=0)
    assert pairs(task.train) == [
        (
            "Question: George wants to warm his hands quickly by rubbing them. Which skin surface will produce the "
            "most heat?\nChoices: (A) dry palms (B) wet palms (C) palms covered with oil (D) palms covered with "
            "lotion\nAnswer:",
            " wet palms",
        ),
        ("Question: Which is a liquid?\nChoices: (A) ice (B) milk (C) steam\nAnswer:", " milk"),
    ]


def test_arc_unknown_key_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = dict(ARC_HUB[0], answerKey="E")
    write_jsonl(tmp_path / "arc" / "train.jsonl", [arc_original(ARC_HUB[1]), arc_original(bad)])
    write_jsonl(tmp_path / "arc" / "test.jsonl", [arc_original(ARC_HUB[1])])
    with pytest.raises(InputError) as err:
        load_task(local("arc_easy", "arc"), seed=0)
    assert str(err.value) == (
        "invalid arc line 2 in arc/train.jsonl: answerKey 'E' "
        "(allowed: one of the choice labels A, B, C, D (or the same position as a letter/digit))"
    )
    digit_out_of_range = dict(ARC_HUB[2], answerKey="4")  # letters A-C, key 4: no 4th choice
    write_jsonl(tmp_path / "arc" / "train.jsonl", [digit_out_of_range])
    with pytest.raises(
        InputError,
        match=r"^invalid arc line 1 in arc/train.jsonl: answerKey '4' \(allowed: one of the choice labels A, B, C ",
    ):
        load_task(local("arc_easy", "arc"), seed=0)


# --- BookCorpus -----------------------------------------------------------------------------


def sentence(i: int) -> str:
    return " ".join(f"s{i}w{j}" for j in range(9)) + " ."


def test_bookcorpus_txt_passages_prompt_and_held_out_tail(tmp_path):
    # 40 sentences of 10 words: six passages of 60 words, then a 40-word tail passage
    (tmp_path / "books.txt").write_text("\n".join(sentence(i) for i in range(40)) + "\n\n")
    task = load_task(local("bookcorpus", tmp_path / "books.txt"), seed=0)
    assert get_task("bookcorpus").narrative and task.train[0].meta is None
    assert len(task.train) == 6 and len(task.test) == 1
    first = " ".join(sentence(i) for i in range(6)).split()
    assert task.train[0].prompt == " ".join(first[:12])
    assert task.train[0].prompt == "s0w0 s0w1 s0w2 s0w3 s0w4 s0w5 s0w6 s0w7 s0w8 . s1w0 s1w1"
    assert task.train[0].answer == " " + " ".join(first[12:])
    assert task.test[0].text == " ".join(sentence(i) for i in range(36, 40))
    assert task.test[0].source == "real:bookcorpus"


def test_bookcorpus_hub_and_jsonl_give_the_same_passages(fake_hub, tmp_path):
    tables, calls = fake_hub
    rows = [{"text": sentence(i)} for i in range(200)]  # 33 passages of 60 words, a 20-word tail dropped
    tables[("bookcorpus/bookcorpus", None, "train")] = rows
    hub = load_task(TaskConfig(name="bookcorpus"), seed=0)
    assert (len(hub.train), len(hub.test)) == (31, 2)  # the last 5% (round(1.65) = 2) are the test split
    assert hub.test[-1].text == " ".join(sentence(i) for i in range(192, 198))
    write_jsonl(tmp_path / "bc.jsonl", rows)
    local_ = load_task(local("bookcorpus", tmp_path / "bc.jsonl"), seed=0)
    assert pairs(hub.train) == pairs(local_.train) and pairs(hub.test) == pairs(local_.test)
    assert calls == [("bookcorpus/bookcorpus", None, "train", "streaming")]


def test_bookcorpus_hub_is_streamed_and_stops_at_the_passages_it_needs(tmp_path, monkeypatch):
    """The real `datasets.load_dataset(..., streaming=True)` on a local folder in the release
    format of the hub copy (books_large_p1.txt, books_large_p2.txt: one sentence a line), given
    as task.hub_id: the same call as for the hub id, read only as far as the passages need."""
    import datasets

    folder = tmp_path / "bookcorpus"
    folder.mkdir()
    (folder / "books_large_p1.txt").write_text("\n".join(sentence(i) for i in range(300)) + "\n")
    (folder / "books_large_p2.txt").write_text("\n".join(sentence(i) for i in range(300, 3000)) + "\n")
    real = datasets.load_dataset
    loads: list = []
    read = [0]

    class Counted:
        def __init__(self, dataset):
            self.dataset = dataset

        def __iter__(self):
            for row in self.dataset:
                read[0] += 1
                yield row

    def load_dataset(*args, **kwargs):
        dataset = real(*args, **kwargs)
        loads.append((args, kwargs, type(dataset).__name__))
        return Counted(dataset)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    cfg = TaskConfig(name="bookcorpus", hub_id=str(folder), train_size=4, test_size=2)
    task = load_task(cfg, seed=0)
    assert loads == [((str(folder), None), {"split": "train", "streaming": True}, "IterableDataset")]
    # passage_limit(4, 2) = 40 passages of 6 ten-word sentences: 240 sentences, then the stream is closed
    assert 240 <= read[0] <= 241 and read[0] < 300
    assert (len(task.train), len(task.test)) == (4, 2)
    # the same passages as the local file (which stops at the same place)
    local_ = load_task(local("bookcorpus", folder / "books_large_p1.txt", train_size=4, test_size=2), seed=0)
    assert pairs(task.train) == pairs(local_.train) and pairs(task.test) == pairs(local_.test)
    assert task.test[-1].text == " ".join(sentence(i) for i in range(234, 240))


def test_bookcorpus_stream_offline_falls_back_to_the_cache_and_read_errors(fake_hub, monkeypatch):
    import datasets

    import crossgen.tasks.hub as hub

    tables, calls = fake_hub
    rows = [{"text": sentence(i)} for i in range(60)]
    tables[("bookcorpus/bookcorpus", None, "train")] = rows
    fake = datasets.load_dataset

    def no_stream(path, name=None, split=None, streaming=False, **kw):
        if streaming:  # as offline: a stream needs the hub, a cached copy does not
            calls.append((path, name, split, "streaming"))
            raise ConnectionError("Couldn't reach the Hub (OfflineModeIsEnabled)")
        return fake(path, name, split, **kw)

    monkeypatch.setattr(datasets, "load_dataset", no_stream)
    task = load_task(TaskConfig(name="bookcorpus", train_size=5, test_size=1), seed=0)
    assert len(task.train) == 5 and calls[-2:] == [
        ("bookcorpus/bookcorpus", None, "train", "streaming"),
        ("bookcorpus/bookcorpus", None, "train"),
    ]
    monkeypatch.setattr(hub, "offline", lambda: False)  # online, a failed stream is the answer
    with pytest.raises(InputError, match=r"^invalid task.hub_id: bookcorpus/bookcorpus \(allowed: a Hugging Face "):
        load_task(TaskConfig(name="bookcorpus", train_size=5, test_size=1), seed=0)

    class Broken:  # a connection lost after 3 rows
        def __iter__(self):
            yield from rows[:3]
            raise ConnectionError("Connection reset by peer")

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **kw: Broken())
    with pytest.raises(InputError) as err:
        load_task(TaskConfig(name="bookcorpus", train_size=5, test_size=1), seed=0)
    assert str(err.value) == (
        "invalid task.hub_id: bookcorpus/bookcorpus (allowed: a Hugging Face dataset whose 'train' split can be "
        "read (row 4: ConnectionError: Connection reset by peer))"
    )


def test_bookcorpus_folder_of_books_and_passage_rules(tmp_path):
    (tmp_path / "b1.txt").write_text("\n".join(sentence(i) for i in range(20)))
    (tmp_path / "b2.txt").write_text("\n".join(sentence(i) for i in range(20, 40)))
    task = load_task(local("bookcorpus", tmp_path, train_size=3), seed=0)
    assert len(task.train) == 3 and len(task.test) == 1
    # a folder with split files uses them as they are
    split_folder = tmp_path / "split"
    split_folder.mkdir()
    (split_folder / "train.txt").write_text("\n".join(sentence(i) for i in range(24)))
    write_jsonl(split_folder / "test.jsonl", [{"text": sentence(i)} for i in range(100, 106)])
    task = load_task(local("bookcorpus", split_folder), seed=0)
    assert len(task.train) == 4 and pairs(task.test) == [
        split_passage(" ".join(sentence(i) for i in range(100, 106)).split())
    ]
    # long lines are cut at MAX words, short passages merged up to MIN words
    long_line = " ".join(f"w{i}" for i in range(250))
    twenty = " ".join(f"x{i}" for i in range(20))
    got = passages([long_line, twenty], min_words=60, max_words=120)
    assert [len(p) for p in got] == [120, 120, 30] and got[2][10:] == twenty.split()
    # a tail shorter than MIN/2 words is dropped; sentences are never split across passages
    assert [len(p) for p in passages([long_line, "a b"], min_words=60, max_words=120)] == [120, 120]
    assert [len(p) for p in passages([twenty] * 3 + [" ".join(["y"] * 70)], 60, 120)] == [60, 70]
    assert split_passage(["one", "two", "three"], prompt_words=2) == ("one two", " three")


# --- errors ---------------------------------------------------------------------------------


def test_unknown_task_name():
    with pytest.raises(InputError) as err:
        load_task(TaskConfig(name="squad"), seed=0)
    assert str(err.value) == (
        "invalid task.name: squad (allowed: one of arc_challenge, arc_easy, bookcorpus, gsm8k, "
        "offline_arithmetic, offline_reasoning, offline_science, offline_stories, sciq)"
    )
    assert len(task_names()) == 9 and task_names(generated=False) == [
        "arc_challenge",
        "arc_easy",
        "bookcorpus",
        "gsm8k",
        "sciq",
    ]


def test_missing_local_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError) as err:
        load_task(local("sciq", "nope/train.json"), seed=0)
    assert str(err.value) == "invalid task.path: nope/train.json (allowed: an existing file or folder)"


def test_missing_field_names_record_file_and_field(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sciq").mkdir()
    broken = [SCIQ[0], SCIQ[1], {k: v for k, v in SCIQ[2].items() if k != "correct_answer"}]
    (tmp_path / "sciq" / "train.json").write_text(json.dumps(broken))
    (tmp_path / "sciq" / "test.json").write_text(json.dumps(SCIQ))
    with pytest.raises(InputError) as err:
        load_task(local("sciq", "sciq"), seed=0)
    assert str(err.value) == (
        "invalid sciq record 3 in sciq/train.json: missing 'correct_answer' (allowed: records with fields "
        "question and correct_answer (SciQ hub schema or the original JSON release))"
    )
    write_jsonl(tmp_path / "g.jsonl", [GSM8K[0], {"question": "Where is the answer?"}])
    with pytest.raises(InputError) as err:
        load_task(local("gsm8k", "g.jsonl"), seed=0)
    assert str(err.value) == (
        "invalid gsm8k line 2 in g.jsonl: missing 'answer' (allowed: records with fields question and answer "
        "(GSM8K hub schema or the original JSONL release))"
    )
    write_jsonl(tmp_path / "arc.jsonl", [{"id": "x", "question": {"choices": []}, "answerKey": "A"}])
    with pytest.raises(InputError, match=r"^invalid arc line 1 in arc.jsonl: missing 'question.stem' "):
        load_task(local("arc_easy", "arc.jsonl"), seed=0)
    write_jsonl(tmp_path / "bc.jsonl", [{"text": "fine"}, {"body": "no text"}])
    with pytest.raises(InputError, match=r"^invalid bookcorpus line 2 in bc.jsonl: missing 'text' "):
        load_task(local("bookcorpus", "bc.jsonl"), seed=0)


def test_empty_split(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_jsonl(tmp_path / "g" / "train.jsonl", GSM8K)
    (tmp_path / "g" / "test.jsonl").write_text("\n")
    with pytest.raises(InputError) as err:
        load_task(local("gsm8k", "g"), seed=0)
    assert str(err.value) == "invalid task gsm8k split 'test' (g): 0 examples (allowed: at least one example)"


def test_bad_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "g.jsonl").write_text('{"question": "q", "answer": "a"}\n{not json\n')
    with pytest.raises(InputError) as err:
        load_task(local("gsm8k", "g.jsonl"), seed=0)
    assert str(err.value) == "invalid gsm8k line 2 in g.jsonl: not valid JSON (allowed: one JSON object per line)"
    (tmp_path / "notes.txt").write_text("plain text\n")
    with pytest.raises(
        InputError, match=r"^invalid task.path: notes.txt \(allowed: a .jsonl, .json, .parquet or .csv file for sciq"
    ):
        load_task(local("sciq", "notes.txt"), seed=0)
    (tmp_path / "data.xml").write_text("<x/>")
    with pytest.raises(
        InputError, match=r"^invalid task.path: data.xml \(allowed: a .jsonl, .json, .parquet, .csv or .txt file"
    ):
        load_task(local("sciq", "data.xml"), seed=0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"^invalid task.path: empty \(allowed: a folder with a train file"):
        load_task(local("sciq", "empty"), seed=0)


def test_source_must_fit_the_name(tmp_path):
    with pytest.raises(InputError) as err:
        load_task(TaskConfig(name="sciq", source="offline"), seed=0)
    assert str(err.value) == (
        "invalid task.source: offline (allowed: hub or local for task sciq (generated stand-ins: offline_arithmetic, "
        "offline_reasoning, offline_science, offline_stories))"
    )
    with pytest.raises(InputError) as err:
        load_task(local("offline_science", tmp_path), seed=0)
    assert str(err.value) == "invalid task.source: local (allowed: offline for task offline_science (it is generated))"


def test_hub_unreachable_offline(fake_hub):
    with pytest.raises(InputError) as err:
        load_task(TaskConfig(name="sciq"), seed=0)
    assert str(err.value) == (
        "invalid task.hub_id: allenai/sciq (allowed: a dataset in the local Hugging Face cache when offline "
        "(HF_DATASETS_OFFLINE=1), or source: local with a path)"
    )


def test_hub_real_call_without_cache_is_an_input_error():
    """No monkeypatch: the real `datasets` in offline mode, with an id no cache can hold."""
    with pytest.raises(
        InputError, match=r"^invalid task.hub_id: crossgen-tests/no-such-dataset \(allowed: a dataset in the local"
    ):
        load_task(TaskConfig(name="gsm8k", hub_id="crossgen-tests/no-such-dataset"), seed=0)


def test_hub_error_when_online(fake_hub, monkeypatch):
    import crossgen.tasks.hub as hub

    monkeypatch.setattr(hub, "offline", lambda: False)
    with pytest.raises(InputError) as err:
        load_task(TaskConfig(name="sciq"), seed=0)
    assert str(err.value) == (
        "invalid task.hub_id: allenai/sciq (allowed: a Hugging Face dataset with a 'train' split that can be "
        "loaded (ConnectionError: Couldn't reach 'allenai/sciq' on the Hub (OfflineModeIsEnabled)))"
    )
