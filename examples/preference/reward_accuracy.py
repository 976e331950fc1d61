"""Held-out reward accuracy of a DPO-tuned model, recomputed with torch and transformers alone (neither ftrun nor TRL).

DPO's implicit reward of a completion is ``beta`` times how much more likely the tuned model (the
policy) finds it than the reference model does: ``beta * (log p_policy - log p_reference)``, each
the sum of the log-probabilities of the completion's tokens after the prompt (the completion ended
with the end-of-text token). A pair is right when its chosen completion's reward is above its
rejected one's; the reward accuracy is the share of right pairs, which ftrun logs (from TRL) as
``rewards/accuracies``.

    python examples/preference/reward_accuracy.py POLICY_DIR REFERENCE_DIR PAIRS.jsonl [--beta 0.1]

It also prints how often each model on its own finds the chosen completion more likely than the
rejected one: before DPO (the reference) and after (the policy).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def completion_log_prob(model: torch.nn.Module, prompt_ids: list[int], completion_ids: list[int]) -> float:
    """The summed log-probability of ``completion_ids`` after ``prompt_ids``: each token scored by the logits of the position before it."""
    ids = torch.tensor([prompt_ids + completion_ids])
    with torch.no_grad():
        log_probs = torch.log_softmax(model(ids, attention_mask=torch.ones_like(ids)).logits[0, :-1].float(), dim=-1)
    targets = ids[0, 1:]
    scored = log_probs.gather(1, targets.unsqueeze(1)).squeeze(1)
    start = max(len(prompt_ids) - 1, 0)  # the first completion token is predicted at the prompt's last position
    return scored[start:].sum().item()


def split_pair(tokenizer, prompt: str, chosen: str, rejected: str) -> tuple[list[int], list[int], list[int]]:
    """The prompt's tokens and each completion's, ended with the end-of-text token: the completions start where
    the prompt's tokens and those of prompt and completion together part (tokens may merge across the boundary)."""
    eos = tokenizer.eos_token_id
    prompt_ids = tokenizer(prompt)["input_ids"]
    whole = []
    for completion in (chosen, rejected):
        ids = tokenizer(prompt + completion)["input_ids"]
        whole.append(ids if ids and ids[-1] == eos else [*ids, eos])
    start = min(next((i for i, (a, b) in enumerate(zip(prompt_ids, ids)) if a != b), min(len(prompt_ids), len(ids))) for ids in whole)
    return prompt_ids[:start], whole[0][start:], whole[1][start:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("policy", type=Path, help="the DPO-tuned model directory")
    parser.add_argument("reference", type=Path, help="the model DPO started from (the reference)")
    parser.add_argument("pairs", type=Path, help="a jsonl file of prompt, chosen, rejected")
    parser.add_argument("--beta", type=float, default=0.1, help="DPO's beta, as the run's training.beta")
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(args.policy)
    policy, reference = (AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval() for path in (args.policy, args.reference))
    right, margins, policy_prefers, reference_prefers = 0, [], 0, 0
    rows = [json.loads(line) for line in args.pairs.read_text(encoding="utf-8").splitlines() if line.strip()]
    for row in rows:
        prompt_ids, chosen_ids, rejected_ids = split_pair(tokenizer, row["prompt"], row["chosen"], row["rejected"])
        logps = {
            name: [completion_log_prob(model, prompt_ids, ids) for ids in (chosen_ids, rejected_ids)]
            for name, model in (("policy", policy), ("reference", reference))
        }
        chosen_reward = args.beta * (logps["policy"][0] - logps["reference"][0])
        rejected_reward = args.beta * (logps["policy"][1] - logps["reference"][1])
        right += chosen_reward > rejected_reward
        margins.append(chosen_reward - rejected_reward)
        policy_prefers += logps["policy"][0] > logps["policy"][1]
        reference_prefers += logps["reference"][0] > logps["reference"][1]
    count = len(rows)
    print(f"{count} pairs of {args.pairs}")
    print(f"reward accuracy (rewards/accuracies): {right / count:.4f}")
    print(f"mean reward margin (rewards/margins): {sum(margins) / count:.4f}")
    print(
        f"the chosen completion more likely than the rejected: reference (before DPO) {reference_prefers / count:.4f}, policy (after) {policy_prefers / count:.4f}"
    )


if __name__ == "__main__":
    main()
