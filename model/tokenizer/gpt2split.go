package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// gpt2Pieces splits s as the regex of Hugging Face's ByteLevel pre-tokenizer
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// (GPT-2's) does, by hand: regexp2 took half of all encoding time there.
// Each case below is one alternative, tried in the regex's order;
// FuzzGPT2Split checks it against the regex.
func gpt2Pieces(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		n := gpt2Match(s[i:])
		out = append(out, s[i:i+n])
		i += n
	}
	return out
}

func isOther(r rune) bool { return !unicode.IsSpace(r) && !unicode.IsLetter(r) && !unicode.IsNumber(r) }

// run returns the length of the prefix of s whose runes satisfy class.
func run(s string, class func(rune) bool) int {
	n := 0
	for n < len(s) {
		r, size := utf8.DecodeRuneInString(s[n:])
		if !class(r) {
			break
		}
		n += size
	}
	return n
}

// gpt2Match is the length of the regex's match at the start of s (never 0).
func gpt2Match(s string) int {
	// 's|'t|'re|'ve|'m|'ll|'d
	if s[0] == '\'' && len(s) >= 2 {
		switch s[1] {
		case 's', 't', 'm', 'd':
			return 2
		case 'r', 'v':
			if len(s) >= 3 && s[2] == 'e' {
				return 3
			}
		case 'l':
			if len(s) >= 3 && s[2] == 'l' {
				return 3
			}
		}
	}
	//  ?\p{L}+ |  ?\p{N}+ |  ?[^\s\p{L}\p{N}]+
	body := s
	if s[0] == ' ' {
		body = s[1:]
	}
	for _, class := range []func(rune) bool{unicode.IsLetter, unicode.IsNumber, isOther} {
		if n := run(body, class); n > 0 {
			return len(s) - len(body) + n
		}
	}
	// \s+(?!\S) | \s+ : a run of whitespace, less its last character when
	// something follows and the run is longer than one.
	n := run(s, unicode.IsSpace)
	if n < len(s) {
		_, last := utf8.DecodeLastRuneInString(s[:n])
		if n > last {
			return n - last
		}
	}
	return n
}
