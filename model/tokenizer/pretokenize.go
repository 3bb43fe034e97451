package tokenizer

import (
	"fmt"
	"strings"

	"github.com/dlclark/regexp2"
)

// piece is a span of normalized text on its way to the model.
type piece struct {
	s string
	// first reports whether the piece starts at offset 0 of the original
	// text, which Metaspace's "first" prepend scheme looks at.
	first bool
}

type preTokenizer interface {
	preTokenize(pieces []piece) ([]piece, error)
}

type preSequence []preTokenizer

func (seq preSequence) preTokenize(pieces []piece) ([]piece, error) {
	var err error
	for _, p := range seq {
		if pieces, err = p.preTokenize(pieces); err != nil {
			return nil, err
		}
	}
	return pieces, nil
}

// compileRegex compiles a tokenizer.json regex. Lookaheads such as
// \s+(?!\S) are why this package uses regexp2 rather than regexp. Hugging
// Face uses Oniguruma; regexp2's default (.NET) syntax agrees with it on the
// constructs these patterns use (lookahead, \p{L}, \p{N}, Unicode \s,
// (?i:...)), except that (?i:...) does not apply Unicode case folding
// (docs/DATA.md).
func compileRegex(pattern string) (*regexp2.Regexp, error) {
	re, err := regexp2.Compile(pattern, regexp2.None)
	if err != nil {
		return nil, fmt.Errorf("regex %q: %w", pattern, err)
	}
	return re, nil
}

// span is a part of a piece, in runes, and whether the pattern matched it.
type span struct {
	start, end int
	match      bool
}

// regexSpans cuts runes into alternating unmatched and matched spans,
// leaving out empty matches as Hugging Face's splits drop empty pieces.
func regexSpans(re *regexp2.Regexp, runes []rune) ([]span, error) {
	var spans []span
	prev := 0
	m, err := re.FindRunesMatch(runes)
	for ; err == nil && m != nil; m, err = re.FindNextMatch(m) {
		if m.Length == 0 {
			continue
		}
		if m.Index > prev {
			spans = append(spans, span{prev, m.Index, false})
		}
		spans = append(spans, span{m.Index, m.Index + m.Length, true})
		prev = m.Index + m.Length
	}
	if err != nil {
		return nil, fmt.Errorf("tokenizer: regex: %w", err)
	}
	if prev < len(runes) {
		spans = append(spans, span{prev, len(runes), false})
	}
	return spans, nil
}

func literalSpans(lit []rune, runes []rune) []span {
	var spans []span
	prev := 0
	for i := 0; i+len(lit) <= len(runes); {
		if string(runes[i:i+len(lit)]) != string(lit) {
			i++
			continue
		}
		if i > prev {
			spans = append(spans, span{prev, i, false})
		}
		spans = append(spans, span{i, i + len(lit), true})
		i += len(lit)
		prev = i
	}
	if prev < len(runes) {
		spans = append(spans, span{prev, len(runes), false})
	}
	return spans
}

type behavior int

const (
	isolated behavior = iota
	removed
	mergedWithPrevious
	mergedWithNext
)

// apply turns spans into the runs of pieces Hugging Face's
// SplitDelimiterBehavior produces, with the same fold for the merged kinds.
func (b behavior) apply(spans []span) []span {
	switch b {
	case removed:
		var out []span
		for _, s := range spans {
			if !s.match {
				out = append(out, s)
			}
		}
		return out
	case mergedWithPrevious:
		var out []span
		prevMatch := false
		for _, s := range spans {
			if s.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].end = s.end
			} else {
				out = append(out, s)
			}
			prevMatch = s.match
		}
		return out
	case mergedWithNext:
		var out []span
		prevMatch := false
		for i := len(spans) - 1; i >= 0; i-- {
			s := spans[i]
			if s.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].start = s.start
			} else {
				out = append(out, s)
			}
			prevMatch = s.match
		}
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
		return out
	}
	return spans
}

// cut applies spans to p, dropping empty pieces.
func cut(p piece, runes []rune, spans []span, out []piece) []piece {
	for _, s := range spans {
		if s.end > s.start {
			out = append(out, piece{s: string(runes[s.start:s.end]), first: p.first && s.start == 0})
		}
	}
	return out
}

type split struct {
	re       *regexp2.Regexp // or literal
	literal  string
	behavior behavior
	invert   bool
}

func (sp split) preTokenize(pieces []piece) ([]piece, error) {
	var out []piece
	for _, p := range pieces {
		runes := []rune(p.s)
		var spans []span
		if sp.re != nil {
			var err error
			if spans, err = regexSpans(sp.re, runes); err != nil {
				return nil, err
			}
		} else {
			spans = literalSpans([]rune(sp.literal), runes)
		}
		if sp.invert {
			for i := range spans {
				spans[i].match = !spans[i].match
			}
		}
		out = cut(p, runes, sp.behavior.apply(spans), out)
	}
	return out, nil
}

// byteLevelPre is Hugging Face's ByteLevel pre-tokenizer: optionally a
// leading space, GPT-2's split, then each byte spelled as one character.
type byteLevelPre struct {
	addPrefixSpace bool
	useRegex       bool
}

func (b byteLevelPre) preTokenize(pieces []piece) ([]piece, error) {
	var out []piece
	for _, p := range pieces {
		if b.addPrefixSpace && !strings.HasPrefix(p.s, " ") {
			p.s = " " + p.s
		}
		if !b.useRegex {
			out = append(out, p)
			continue
		}
		for j, w := range gpt2Pieces(p.s) {
			out = append(out, piece{s: w, first: p.first && j == 0})
		}
	}
	for i := range out {
		out[i].s = bytesToChars(out[i].s)
	}
	return out, nil
}

type prependScheme int

const (
	prependAlways prependScheme = iota
	prependFirst
	prependNever
)

// metaspace is SentencePiece's whitespace handling as Hugging Face's
// Metaspace pre-tokenizer does it.
type metaspace struct {
	replacement rune
	scheme      prependScheme
	split       bool
}

func (m metaspace) preTokenize(pieces []piece) ([]piece, error) {
	var out []piece
	rep := string(m.replacement)
	for _, p := range pieces {
		p.s = strings.ReplaceAll(p.s, " ", rep)
		if !strings.HasPrefix(p.s, rep) && (m.scheme == prependAlways || m.scheme == prependFirst && p.first) {
			p.s = rep + p.s
		}
		if !m.split {
			out = append(out, p)
			continue
		}
		runes := []rune(p.s)
		out = cut(p, runes, mergedWithNext.apply(literalSpans([]rune{m.replacement}, runes)), out)
	}
	return out, nil
}
