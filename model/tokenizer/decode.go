package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// decoder is one step of Hugging Face's decode_chain: tokens in, tokens out;
// the final tokens are concatenated.
type decoder interface {
	decode(tokens []string) []string
}

type decSequence []decoder

func (seq decSequence) decode(tokens []string) []string {
	for _, d := range seq {
		tokens = d.decode(tokens)
	}
	return tokens
}

// decByteLevel maps byte-level characters back to bytes. A token with a
// character outside the table (an added token such as "<|im_start|>" is
// fine: its characters are printable ASCII) contributes its UTF-8 as is.
type decByteLevel struct{}

func (decByteLevel) decode(tokens []string) []string {
	var b []byte
	for _, t := range tokens {
		start := len(b)
		for _, r := range t {
			c, ok := charByte[r]
			if !ok {
				b = append(b[:start], t...)
				break
			}
			b = append(b, c)
		}
	}
	return []string{toValidUTF8(b)}
}

type decReplace replace

func (r decReplace) decode(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		out[i] = strings.ReplaceAll(t, r.old, r.new)
	}
	return out
}

// decByteFallback turns runs of <0xXX> tokens into text; a run that is not
// valid UTF-8 becomes one U+FFFD per byte, as in Hugging Face.
type decByteFallback struct{}

func (decByteFallback) decode(tokens []string) []string {
	var out []string
	var run []byte
	flush := func() {
		if len(run) == 0 {
			return
		}
		if utf8.Valid(run) {
			out = append(out, string(run))
		} else {
			for range run {
				out = append(out, string(utf8.RuneError))
			}
		}
		run = run[:0]
	}
	for _, t := range tokens {
		if b, ok := parseByteToken(t); ok {
			run = append(run, b)
			continue
		}
		flush()
		out = append(out, t)
	}
	flush()
	return out
}

func parseByteToken(t string) (byte, bool) {
	if len(t) != 6 || !strings.HasPrefix(t, "<0x") || t[5] != '>' {
		return 0, false
	}
	var b byte
	for _, c := range []byte(t[3:5]) {
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'A' && c <= 'F':
			v = c - 'A' + 10
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		default:
			return 0, false
		}
		b = b<<4 | v
	}
	return b, true
}

type decFuse struct{}

func (decFuse) decode(tokens []string) []string { return []string{strings.Join(tokens, "")} }

// decStrip removes up to start leading and stop trailing copies of content
// from each token.
type decStrip struct {
	content     rune
	start, stop int
}

func (d decStrip) decode(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		r := []rune(t)
		lo := 0
		for lo < d.start && lo < len(r) && r[lo] == d.content {
			lo++
		}
		hi := len(r)
		for len(r)-hi < d.stop && hi > lo && r[hi-1] == d.content {
			hi--
		}
		out[i] = string(r[lo:hi])
	}
	return out
}

// decMetaspace turns the replacement character back into spaces. Like
// Hugging Face, it drops every replacement character of the first token
// (not only a leading one) unless the prepend scheme is "never".
type decMetaspace metaspace

func (d decMetaspace) decode(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		drop := i == 0 && d.scheme != prependNever
		out[i] = strings.Map(func(r rune) rune {
			switch {
			case r != d.replacement:
				return r
			case drop:
				return -1
			}
			return ' '
		}, t)
	}
	return out
}
