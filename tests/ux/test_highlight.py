"""The Pygments lexer: every example lexes cleanly, and tokens get the right classes."""
from __future__ import annotations

from pathlib import Path

import pytest
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.token import Comment, Error, Keyword, Name, Number, Operator, String

from ebmlang.language.highlight import EbmLexer

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.ebm"))


def tokens(text: str) -> list[tuple[object, str]]:
    return [(kind, value) for kind, value in EbmLexer().get_tokens(text) if value.strip()]


def test_there_are_examples_to_lex():
    assert len(EXAMPLES) >= 10


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_lexes_without_error_tokens_and_round_trips(path):
    text = path.read_text()
    lexed = list(EbmLexer().get_tokens(text))
    errors = [value for kind, value in lexed if kind in Error]
    assert errors == []
    # Pygments must not drop or invent text (it only appends a final newline).
    assert "".join(value for _, value in lexed).rstrip("\n") == text.rstrip("\n")


def test_token_classes_follow_the_grammar():
    text = ('import "prior.ebm" as Prior  # an expert\n'
            "const N = 3\n"
            "latent x[N] : categorical(2)\n"
            "param w = 0.5e-1 in 0.0\n"
            "energy e[i in 0..N where i != 1] = -logsumexp(k in 0..2) w * exp(x[i]) ^ 2 + pi\n")
    lexed = tokens(text)
    kinds = {value: kind for kind, value in lexed}
    for word in ("import", "const", "latent", "param", "energy"):
        assert kinds[word] in Keyword.Declaration, word
    assert kinds["where"] in Keyword and kinds["in"] in Keyword
    assert kinds["categorical"] in Keyword.Type
    assert kinds["logsumexp"] in Name.Builtin and kinds["exp"] in Name.Builtin
    assert kinds["pi"] in Name.Builtin
    assert kinds['"prior.ebm"'] in String
    assert kinds["# an expert"] in Comment
    assert kinds["0.5e-1"] in Number.Float and kinds["3"] in Number.Integer
    assert kinds[".."] in Operator and kinds["!="] in Operator and kinds["^"] in Operator
    after = {lexed[k][1]: lexed[k + 1] for k in range(len(lexed) - 1)}
    assert after["const"] == (Name.Variable, "N")  # the name a declaration introduces
    assert after["latent"] == (Name.Variable, "x")
    assert after["energy"] == (Name.Function, "e")
    assert after["as"] == (Name.Namespace, "Prior")
    assert (Name, "N") in lexed  # ... and uses of it are plain names


def test_keywords_inside_longer_names_are_plain_names():
    lexed = tokens("energy e = summary + index + x_sum + mean_x\n")
    kinds = {value: kind for kind, value in lexed}
    for name in ("summary", "index", "x_sum", "mean_x"):
        assert kinds[name] is Name, name


def test_characters_outside_the_language_are_error_tokens():
    lexed = tokens("energy e = x $ 2\n")
    assert (Error, "$") in lexed


def test_pygments_finds_the_lexer_by_alias_and_filename():
    assert isinstance(get_lexer_by_name("ebm"), EbmLexer)
    assert isinstance(get_lexer_for_filename("model.ebm"), EbmLexer)
