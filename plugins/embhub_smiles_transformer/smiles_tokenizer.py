"""A regex SMILES tokenizer with a ``vocab.txt`` lookup, for checkpoints that ship no tokenizer of their own.

Some SMILES BERT checkpoints (rxnfp's among them) were trained with an atom-level regex split and
ship only a WordPiece-style ``vocab.txt`` (one token per line, the line number is the token id).
The split follows the SMILES regular expression published by Schwaller et al. (2019), "Molecular
Transformer", ACS Cent. Sci. 5:1572: bracket atoms, two-letter organic atoms (``Br``, ``Cl``),
single-letter atoms, bonds, branches, ring closures (``%nn`` and digits) and the reaction arrow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SMILES_TOKEN = re.compile(
    r"\[[^\]]+]"  # bracket atom: [C@@H], [nH], [O-], [13C]
    r"|Br?|Cl?"  # B, Br, C, Cl
    r"|N|O|S|P|F|I"
    r"|b|c|n|o|s|p"  # aromatic atoms
    r"|\(|\)|\.|=|#|-|\+|\\|/|:|~|@|\?|\*|\$|\|"
    r"|>>?"  # reaction arrow or agent separator
    r"|%\([0-9]{3}\)|%[0-9]{2}|[0-9]"  # ring closures
)
SPECIAL_TOKENS = {"cls": "[CLS]", "sep": "[SEP]", "pad": "[PAD]", "unk": "[UNK]"}


class UntokenizableSmiles(ValueError):
    """Part of the SMILES is not a SMILES token (the message quotes it)."""


def split_smiles(smiles: str) -> list[str]:
    """The SMILES as regex tokens; raises :class:`UntokenizableSmiles` if any character is left over."""
    tokens = SMILES_TOKEN.findall(smiles)
    if "".join(tokens) != smiles:
        position = _first_gap(smiles, tokens)
        raise UntokenizableSmiles(f"SMILES '{smiles}' has a character the SMILES tokenizer cannot split at position {position}")
    return tokens


def _first_gap(smiles: str, tokens: list[str]) -> int:
    position = 0
    for token in tokens:
        found = smiles.find(token, position)
        if found != position:
            return position
        position += len(token)
    return position


@dataclass
class Encoding:
    """One molecule's token ids (with [CLS] … [SEP]) and which positions are special tokens."""

    input_ids: list[int]
    special: list[bool]
    unknown: int


class RegexSmilesTokenizer:
    """Regex split + vocabulary lookup, BERT-style framing: ``[CLS] tokens… [SEP]``, ``[PAD]`` to pad."""

    def __init__(self, vocab_file: str | Path):
        path = Path(vocab_file)
        lines = path.read_text(encoding="utf-8").splitlines()
        self.vocab = {token: index for index, token in reversed(list(enumerate(lines))) if token}
        self.vocab_file = path
        missing = [token for token in SPECIAL_TOKENS.values() if token not in self.vocab]
        if missing:
            raise ValueError(f"vocabulary {path} lacks the special token(s) {', '.join(missing)}")
        self.cls_id = self.vocab[SPECIAL_TOKENS["cls"]]
        self.sep_id = self.vocab[SPECIAL_TOKENS["sep"]]
        self.pad_id = self.vocab[SPECIAL_TOKENS["pad"]]
        self.unk_id = self.vocab[SPECIAL_TOKENS["unk"]]

    def encode(self, smiles: str) -> Encoding:
        ids = [self.vocab.get(token, self.unk_id) for token in split_smiles(smiles)]
        unknown = sum(1 for i in ids if i == self.unk_id)
        return Encoding([self.cls_id, *ids, self.sep_id], [True, *([False] * len(ids)), True], unknown)
