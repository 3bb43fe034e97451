package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// byteChar and charByte are GPT-2's bytes_to_unicode table: printable
// Latin-1 bytes stand for themselves, the other bytes for U+0100 onwards in
// byte order, so every token is printable text.
var (
	byteChar [256]rune
	charByte = make(map[rune]byte, 256)
)

func init() {
	n := rune(0)
	for b := 0; b < 256; b++ {
		if b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF {
			byteChar[b] = rune(b)
		} else {
			byteChar[b] = 256 + n
			n++
		}
		charByte[byteChar[b]] = byte(b)
	}
}

func bytesToChars(s string) string {
	var sb strings.Builder
	sb.Grow(2 * len(s))
	for i := 0; i < len(s); i++ {
		sb.WriteRune(byteChar[s[i]])
	}
	return sb.String()
}

// toValidUTF8 is Rust's String::from_utf8_lossy: each maximal ill-formed
// subsequence becomes one U+FFFD. Go's strings.ToValidUTF8 would replace a
// whole run of bad bytes with one U+FFFD instead, and ranging over a string
// gives one per byte; both differ from Hugging Face on truncated sequences.
func toValidUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r != utf8.RuneError || size > 1 {
			sb.Write(b[:size])
			b = b[size:]
			continue
		}
		sb.WriteRune(utf8.RuneError)
		b = b[maximalSubpart(b):]
	}
	return sb.String()
}

// maximalSubpart is the length of the ill-formed prefix of b that Unicode
// (and Rust) replace with a single U+FFFD: the longest prefix of a valid
// sequence, or one byte.
func maximalSubpart(b []byte) int {
	lo, hi := byte(0x80), byte(0xBF)
	var n int
	switch c := b[0]; {
	case c >= 0xC2 && c <= 0xDF:
		n = 2
	case c == 0xE0:
		n, lo = 3, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		n = 3
	case c == 0xED:
		n, hi = 3, 0x9F
	case c == 0xF0:
		n, lo = 4, 0x90
	case c >= 0xF1 && c <= 0xF3:
		n = 4
	case c == 0xF4:
		n, hi = 4, 0x8F
	default:
		return 1
	}
	i := 1
	for ; i < n && i < len(b); i++ {
		if b[i] < lo || b[i] > hi {
			break
		}
		lo, hi = 0x80, 0xBF
	}
	return i
}
