package tokenizer

import (
	"strings"

	"golang.org/x/text/unicode/norm"
)

// normalizer rewrites a segment of text between added tokens.
type normalizer interface {
	normalize(s string) string
}

type normSequence []normalizer

func (seq normSequence) normalize(s string) string {
	for _, n := range seq {
		s = n.normalize(s)
	}
	return s
}

// normPrepend adds its string in front of non-empty text only, as Hugging
// Face's Prepend does; it runs once per segment, so Llama's "▁" also follows
// every added token.
type normPrepend string

func (p normPrepend) normalize(s string) string {
	if s == "" {
		return s
	}
	return string(p) + s
}

type replace struct{ old, new string }

func (r replace) normalize(s string) string { return strings.ReplaceAll(s, r.old, r.new) }

type normUnicode struct{ form norm.Form }

func (u normUnicode) normalize(s string) string { return u.form.String(s) }
