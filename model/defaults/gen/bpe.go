package main

import (
	"encoding/json"
	"unicode"
)

// eot is GPT-2's end-of-text token; it closes every pretraining document.
const eot = "<|endoftext|>"

// byteChar is GPT-2's bytes_to_unicode table: tokenizer.json spells every
// byte as a printable character.
var byteChar = func() [256]rune {
	var t [256]rune
	n := rune(0)
	for b := range 256 {
		if b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF {
			t[b] = rune(b)
		} else {
			t[b] = 256 + n
			n++
		}
	}
	return t
}()

// pieces splits ASCII text as GPT-2's pre-tokenizer does for it: an
// optional space followed by letters, digits or punctuation, or a run of
// whitespace. Merges never cross pieces. (It is only used to count pairs;
// encoding itself goes through model/tokenizer.)
func pieces(s string) []string {
	class := func(r byte) int {
		switch {
		case unicode.IsLetter(rune(r)):
			return 1
		case unicode.IsDigit(rune(r)):
			return 2
		case unicode.IsSpace(rune(r)):
			return 3
		}
		return 4
	}
	var out []string
	for i := 0; i < len(s); {
		j := i
		if s[j] == ' ' && j+1 < len(s) && class(s[j+1]) != 3 {
			j++
		}
		c := class(s[j])
		for j < len(s) && class(s[j]) == c {
			j++
		}
		out = append(out, s[i:j])
		i = j
	}
	return out
}

// learnBPE learns n merges from text: the most frequent adjacent pair of
// tokens within a piece is merged, ties going to the smaller pair so the
// result depends on the text alone.
func learnBPE(texts []string, n int) [][2]string {
	counts := map[string]int{}
	for _, t := range texts {
		for _, p := range pieces(t) {
			counts[p]++
		}
	}
	type word struct {
		toks []string
		n    int
	}
	words := make([]word, 0, len(counts))
	for p, c := range counts {
		var toks []string
		for i := 0; i < len(p); i++ {
			toks = append(toks, string(byteChar[p[i]]))
		}
		words = append(words, word{toks, c})
	}
	var merges [][2]string
	for len(merges) < n {
		pairs := map[[2]string]int{}
		for _, w := range words {
			for i := 0; i+1 < len(w.toks); i++ {
				pairs[[2]string{w.toks[i], w.toks[i+1]}] += w.n
			}
		}
		var best [2]string
		bestN := 0
		for p, c := range pairs {
			if c > bestN || c == bestN && (p[0] < best[0] || p[0] == best[0] && p[1] < best[1]) {
				best, bestN = p, c
			}
		}
		if bestN < 2 {
			break // nothing left worth merging
		}
		merges = append(merges, best)
		for wi := range words {
			toks := words[wi].toks
			out := toks[:0]
			for i := 0; i < len(toks); i++ {
				if i+1 < len(toks) && toks[i] == best[0] && toks[i+1] == best[1] {
					out = append(out, best[0]+best[1])
					i++
					continue
				}
				out = append(out, toks[i])
			}
			words[wi].toks = out
		}
	}
	return merges
}

// tokenizerJSON writes a GPT-2-style byte-level BPE tokenizer.json: ids
// 0-255 are the bytes, then one id per merge, then <|endoftext|>.
func tokenizerJSON(merges [][2]string) ([]byte, int, error) {
	vocab := map[string]int{}
	for b := range 256 {
		vocab[string(byteChar[b])] = b
	}
	ms := make([]string, len(merges))
	for i, m := range merges {
		vocab[m[0]+m[1]] = 256 + i
		ms[i] = m[0] + " " + m[1]
	}
	eotID := 256 + len(merges)
	byteLevel := map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
	doc := map[string]any{
		"version":    "1.0",
		"truncation": nil,
		"padding":    nil,
		"added_tokens": []map[string]any{{
			"id": eotID, "content": eot, "single_word": false, "lstrip": false,
			"rstrip": false, "normalized": true, "special": true,
		}},
		"normalizer":     nil,
		"pre_tokenizer":  byteLevel,
		"post_processor": byteLevel,
		"decoder":        byteLevel,
		"model": map[string]any{
			"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "",
			"end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false,
			"vocab": vocab, "merges": ms,
		},
	}
	b, err := json.MarshalIndent(doc, "", " ")
	return append(b, '\n'), eotID + 1, err
}
