"""Preference tuning on real IMDB reviews (needs ../shared): supervised fine-tuning (causal-lm), then DPO (preference) from it.

The pairs are built by examples/preference/build_imdb_pairs.py (a positive review's first words as
the prompt, its next words chosen, a negative review's rejected; held-out pairs from the dev
reviews), and the held-out reward accuracy the run logs is recomputed by
examples/preference/reward_accuracy.py, which uses neither ftrun nor TRL. A small GPT-2 built from
a config, as examples/preference/sft.toml and dpo.toml: both forms (140 pairs by default, 1,200 with
--slow) check that the two figures agree.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHARED, short_and_full

IMDB = SHARED / "data" / "imdb"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "preference"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not IMDB.is_dir(), reason="../shared/data/imdb is absent"),
]
pytest.importorskip("trl")

GPT2 = {"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 128}


#: Measured: 120 pairs (20 held out) gave 0.50, 200 (40) 0.625, the full 1,000 (200) 0.51, each equal to the
#: recomputed figure. At learning rate 5e-5 a model this small barely learns the preference (dpo.toml's 5e-4
#: gave 0.615, docs/tasks/preference.md): the test holds the two figures to each other, not to a floor.
@short_and_full(("pairs", "held_out", "sft_epochs"), (120, 20, 1), (1000, 200, 3))
def test_sft_then_dpo_on_imdb_pairs_and_the_reward_accuracy_recomputed_without_ftrun(
    ftrun_cli, ftrun_manifest, tmp_path, record_property, pairs, held_out, sft_epochs
):
    folder = tmp_path / "pairs"
    subprocess.run(
        [sys.executable, str(EXAMPLES / "build_imdb_pairs.py"), str(IMDB), str(folder), "--train", str(pairs), "--eval", str(held_out)],
        check=True,
        capture_output=True,
    )
    data = {"train_file": str(folder / "train.jsonl"), "eval_file": str(folder / "eval.jsonl")}
    batches = {"per_device_train_batch_size": 16, "per_device_eval_batch_size": 20, "warmup_steps": 0}
    sft = ftrun_manifest(
        {
            "task": "causal-lm",
            "model": {"config": GPT2, "tokenizer_vocab_size": 2000, "tokenizer_lowercase": False},
            "data": {**data, "prompt_column": "prompt", "completion_column": "chosen"},
            "training": {**batches, "num_train_epochs": sft_epochs, "learning_rate": 2e-3},
        },
        name="sft.toml",
    )
    assert ftrun_cli("--manifest", sft, "--output-dir", tmp_path / "sft").code == 0
    beta = 0.1
    dpo = ftrun_manifest(
        {
            "task": "preference",
            "model": {"name": str(tmp_path / "sft")},
            "data": data,
            "training": {
                **batches,
                "num_train_epochs": 1,
                "learning_rate": 5e-5,
                "beta": beta,
                "max_length": 128,
                "bf16": False,
                "activation_checkpointing": False,
            },
        },
        name="dpo.toml",
    )
    result = ftrun_cli("--manifest", dpo, "--output-dir", tmp_path / "dpo")
    assert result.code == 0, result
    logged = json.loads((tmp_path / "dpo" / "eval_results.json").read_text())["eval_rewards/accuracies"]
    script = subprocess.run(
        [sys.executable, str(EXAMPLES / "reward_accuracy.py"), str(tmp_path / "dpo"), str(tmp_path / "sft"), data["eval_file"], "--beta", str(beta)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    recomputed = float(re.search(r"reward accuracy \(rewards/accuracies\): ([\d.]+)", script).group(1))
    record_property(
        "figure", f"{pairs} IMDB pairs, SFT {sft_epochs} epochs then DPO 1 epoch: held-out reward accuracy {logged:.4f} logged, {recomputed:.4f} recomputed"
    )
    assert recomputed == pytest.approx(logged, abs=0.5 / held_out)  # the same pairs right: a share of them, to within rounding
