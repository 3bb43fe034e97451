package tokenizer

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode"
)

// addedToken is a token matched in the text before any other processing.
type addedToken struct {
	content        string // as matched: normalized for normalized tokens
	id             int
	lstrip, rstrip bool
}

// matcher finds added tokens leftmost-longest, as the Aho-Corasick automaton
// of Hugging Face's AddedVocabulary does.
type matcher struct {
	byFirst *[256][]addedToken // by first byte, longest first
}

func newMatcher(tokens []addedToken) matcher {
	m := matcher{byFirst: new([256][]addedToken)}
	for _, t := range tokens {
		m.byFirst[t.content[0]] = append(m.byFirst[t.content[0]], t)
	}
	for _, ts := range m.byFirst[:] {
		sort.SliceStable(ts, func(i, j int) bool { return len(ts[i].content) > len(ts[j].content) })
	}
	return m
}

// segment is a run of text for the model, or an added token (id >= 0).
type segment struct {
	piece
	id int
}

// split cuts s into text and added tokens. first says whether s starts the
// original text.
func (m matcher) split(s string, first bool, out []segment) []segment {
	start := 0 // of the text not yet emitted
	for i := 0; i < len(s); {
		tok, ok := m.longestAt(s, i)
		if !ok {
			i++
			continue
		}
		from, to := i, i+len(tok.content)
		if tok.lstrip {
			// Whitespace before the token belongs to it, but not text
			// already emitted.
			from = max(start, len(strings.TrimRightFunc(s[:from], unicode.IsSpace)))
		}
		if tok.rstrip {
			to = len(s) - len(strings.TrimLeftFunc(s[to:], unicode.IsSpace))
		}
		if from > start {
			out = append(out, segment{piece{s[start:from], first && start == 0}, -1})
		}
		out = append(out, segment{id: tok.id})
		start, i = to, to
	}
	if start < len(s) {
		out = append(out, segment{piece{s[start:], first && start == 0}, -1})
	}
	return out
}

func (m matcher) longestAt(s string, i int) (addedToken, bool) {
	for _, t := range m.byFirst[s[i]] {
		if strings.HasPrefix(s[i:], t.content) {
			return t, true
		}
	}
	return addedToken{}, false
}

// addedVocab is Hugging Face's AddedVocabulary: tokens with normalized=false
// are matched in the raw text; the text between them is normalized and then
// searched for tokens with normalized=true, spelled as the normalizer
// rewrites them.
type addedVocab struct {
	raw, normalized matcher
	byContent       map[string]int
}

func newAddedVocab(tokens []addedJSON, n normalizer) (*addedVocab, error) {
	a := &addedVocab{byContent: make(map[string]int)}
	var raw, normalized []addedToken
	for _, t := range tokens {
		if t.Content == "" {
			return nil, fmt.Errorf("token %d has empty content", t.ID)
		}
		if t.ID < 0 {
			return nil, fmt.Errorf("token %q has negative id %d", t.Content, t.ID)
		}
		if t.SingleWord {
			return nil, fmt.Errorf("token %q: single_word is not supported", t.Content)
		}
		a.byContent[t.Content] = t.ID
		at := addedToken{content: t.Content, id: t.ID, lstrip: t.LStrip, rstrip: t.RStrip}
		if !t.Normalized || n == nil {
			raw = append(raw, at)
			continue
		}
		if at.content = n.normalize(t.Content); at.content == "" {
			return nil, errors.New("token " + t.Content + " normalizes to nothing")
		}
		normalized = append(normalized, at)
	}
	a.raw, a.normalized = newMatcher(raw), newMatcher(normalized)
	return a, nil
}

// split cuts text into added tokens and normalized text, dropping empty
// pieces as Hugging Face's PreTokenizedString does.
func (a *addedVocab) split(text string, n normalizer) []segment {
	var out []segment
	for _, seg := range a.raw.split(text, true, nil) {
		if seg.id >= 0 || n == nil {
			out = append(out, seg)
			continue
		}
		out = a.normalized.split(n.normalize(seg.s), seg.first, out)
	}
	return out
}
