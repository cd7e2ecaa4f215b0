"""Token-by-token text for streaming, correct for byte-level BPE and SentencePiece tokenizers.

Decoding each token alone is wrong twice over: a UTF-8 character can span several byte tokens
(each alone decodes to U+FFFD), and SentencePiece drops a word's leading space when the word
starts the decoded span. So we decode a short window that starts a few tokens back (its text is
known) and emit only what grew past it, holding back text that still ends in U+FFFD.
"""
from __future__ import annotations

REPLACEMENT = "\ufffd"


class IncrementalDetokenizer:
    """push(id) -> the text delta that id completes ("" while a character is incomplete).

    Invariant: "".join(all deltas) + flush() == tokenizer.decode(all ids, skip_special_tokens=True)
    for tokenizers whose decode is prefix-stable (byte-level BPE, SentencePiece).
    """

    def __init__(self, tokenizer, skip_special_tokens: bool = True):
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        self.ids: list[int] = []
        self._prefix = 0  # window start: text of ids[_prefix:_read] was already emitted
        self._read = 0
        self._emitted: list[str] = []

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=self.skip_special_tokens,
                                     clean_up_tokenization_spaces=False)

    def push(self, token_id: int) -> str:
        self.ids.append(int(token_id))
        prefix_text = self._decode(self.ids[self._prefix:self._read])
        new_text = self._decode(self.ids[self._prefix:])
        if len(new_text) > len(prefix_text) and not new_text.endswith(REPLACEMENT):
            delta = new_text[len(prefix_text):]
            self._prefix, self._read = self._read, len(self.ids)
            self._emitted.append(delta)
            return delta
        return ""

    def flush(self) -> str:
        """Whatever is still held back at the end (an incomplete character shows as U+FFFD)."""
        prefix_text = self._decode(self.ids[self._prefix:self._read])
        new_text = self._decode(self.ids[self._prefix:])
        self._prefix = self._read = len(self.ids)
        delta = new_text[len(prefix_text):] if len(new_text) > len(prefix_text) else ""
        if delta:
            self._emitted.append(delta)
        return delta

    @property
    def text(self) -> str:
        """All text emitted so far."""
        return "".join(self._emitted)
