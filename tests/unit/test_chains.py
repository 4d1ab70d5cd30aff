"""The store behind previous_response_id: histories rebuilt from links, within a memory budget."""

from __future__ import annotations

from core.turn.chains import ChainStore


def user(text: str) -> dict[str, object]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def answer(text: str) -> dict[str, object]:
    return {"type": "message", "role": "assistant", "id": f"msg_{text}", "content": [{"type": "output_text", "text": text}]}


def test_history_is_every_turn_in_order() -> None:
    chains = ChainStore()
    reasoning = {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "sealed"}
    unsealed = {"type": "reasoning", "id": "rs_2", "summary": []}
    chains.record("resp_1", None, [user("a")], [reasoning, answer("A")], "acct_1", "conv")
    chains.record("resp_2", "resp_1", [user("b")], [unsealed, answer("B")], "acct_1", "conv")
    assert chains.history("resp_2") == [user("a"), reasoning, answer("A"), user("b"), answer("B")]  # unsealed reasoning cannot go back
    assert chains.history("resp_1") == [user("a"), reasoning, answer("A")]
    link = chains.get("resp_2")
    assert link is not None and link.parent == "resp_1" and link.account_id == "acct_1" and link.conversation_key == "conv"
    assert chains.get("resp_x") is None and chains.history("resp_x") is None


def test_the_oldest_links_go_past_the_budget_and_break_their_chains() -> None:
    chains = ChainStore(budget=2000)
    parent = None
    for i in range(20):
        chains.record(f"resp_{i}", parent, [user("x" * 100)], [answer(str(i))], "acct", None)
        parent = f"resp_{i}"
    assert len(chains) < 20 and chains.get("resp_0") is None
    assert chains.get("resp_19") is not None
    assert chains.history("resp_19") is None  # its first turns are gone: the client must send the history
