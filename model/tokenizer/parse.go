package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Every object of tokenizer.json is decoded with unknown fields refused: a
// field this package does not know may change the encoding, and refusing it
// is the only way to never encode differently from Hugging Face.

type fileJSON struct {
	Version       string          `json:"version"`
	Truncation    json.RawMessage `json:"truncation"`
	Padding       json.RawMessage `json:"padding"`
	AddedTokens   []addedJSON     `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         json.RawMessage `json:"model"`
}

type addedJSON struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

type patternJSON struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

// component holds the fields of every normalizer, pre-tokenizer,
// post-processor and decoder this package implements; each type checks that
// only its own fields were set.
type component struct {
	Type string `json:"type"`

	Normalizers   []json.RawMessage `json:"normalizers"`
	PreTokenizers []json.RawMessage `json:"pretokenizers"`
	Processors    []json.RawMessage `json:"processors"`
	Decoders      []json.RawMessage `json:"decoders"`

	Prepend *string      `json:"prepend"`
	Pattern *patternJSON `json:"pattern"`
	Content *string      `json:"content"`

	AddPrefixSpace *bool   `json:"add_prefix_space"`
	TrimOffsets    *bool   `json:"trim_offsets"`
	UseRegex       *bool   `json:"use_regex"`
	Behavior       *string `json:"behavior"`
	Invert         *bool   `json:"invert"`
	Replacement    *string `json:"replacement"`
	PrependScheme  *string `json:"prepend_scheme"`
	Split          *bool   `json:"split"`
	StrRep         *string `json:"str_rep"`
	Start          *int    `json:"start"`
	Stop           *int    `json:"stop"`

	Single        []templateItem             `json:"single"`
	Pair          json.RawMessage            `json:"pair"`
	SpecialTokens map[string]templateSpecial `json:"special_tokens"`

	raw       []byte
	strictErr error
}

type templateItem struct {
	SpecialToken *struct {
		ID     string `json:"id"`
		TypeID int    `json:"type_id"`
	} `json:"SpecialToken"`
	Sequence *struct {
		ID     string `json:"id"`
		TypeID int    `json:"type_id"`
	} `json:"Sequence"`
}

type templateSpecial struct {
	ID     string   `json:"id"`
	IDs    []int    `json:"ids"`
	Tokens []string `json:"tokens"`
}

type modelJSON struct {
	Type                    string            `json:"type"`
	Dropout                 *float64          `json:"dropout"`
	UnkToken                *string           `json:"unk_token"`
	ContinuingSubwordPrefix *string           `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string           `json:"end_of_word_suffix"`
	FuseUnk                 bool              `json:"fuse_unk"`
	ByteFallback            bool              `json:"byte_fallback"`
	IgnoreMerges            bool              `json:"ignore_merges"`
	Vocab                   map[string]int    `json:"vocab"`
	Merges                  []json.RawMessage `json:"merges"`
}

func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// parseComponent decodes a component leniently, so that an unsupported type
// is reported as such; the strict decoding error, if any, is returned by
// only, which every supported type calls.
func parseComponent(raw json.RawMessage) (*component, error) {
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	c.raw = raw
	c.strictErr = strictUnmarshal(raw, &component{})
	return &c, nil
}

// only returns an error naming the fields set on c beyond the allowed ones.
func (c *component) only(allowed ...string) error {
	if c.strictErr != nil {
		return fmt.Errorf("%s: %w", c.Type, c.strictErr)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(c.raw, &fields); err != nil {
		return err
	}
	for name := range fields {
		ok := name == "type"
		for _, a := range allowed {
			ok = ok || name == a
		}
		if !ok {
			return fmt.Errorf("%s: unsupported field %q", c.Type, name)
		}
	}
	return nil
}

// Parse builds a Tokenizer from the contents of a tokenizer.json file.
func Parse(data []byte) (*Tokenizer, error) {
	var f fileJSON
	if err := strictUnmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("tokenizer: parsing tokenizer.json: %w", err)
	}
	if !isNull(f.Truncation) {
		return nil, errors.New("tokenizer: truncation in tokenizer.json is not supported (set it to null; callers truncate)")
	}
	if !isNull(f.Padding) {
		return nil, errors.New("tokenizer: padding in tokenizer.json is not supported (set it to null)")
	}
	t := &Tokenizer{}
	var err error
	if t.model, err = parseModel(f.Model); err != nil {
		return nil, fmt.Errorf("tokenizer: model: %w", err)
	}
	if !isNull(f.Normalizer) {
		if t.normalizer, err = parseNormalizer(f.Normalizer); err != nil {
			return nil, fmt.Errorf("tokenizer: normalizer: %w", err)
		}
	}
	t.pre = preSequence(nil)
	if !isNull(f.PreTokenizer) {
		if t.pre, err = parsePreTokenizer(f.PreTokenizer); err != nil {
			return nil, fmt.Errorf("tokenizer: pre_tokenizer: %w", err)
		}
	}
	if !isNull(f.Decoder) {
		if t.decoder, err = parseDecoder(f.Decoder); err != nil {
			return nil, fmt.Errorf("tokenizer: decoder: %w", err)
		}
	}
	if t.added, err = newAddedVocab(f.AddedTokens, t.normalizer); err != nil {
		return nil, fmt.Errorf("tokenizer: added_tokens: %w", err)
	}
	if !isNull(f.PostProcessor) {
		if t.post, t.postAfter, err = parsePostProcessor(f.PostProcessor); err != nil {
			return nil, fmt.Errorf("tokenizer: post_processor: %w", err)
		}
	}

	// Ids index one table: the model's vocabulary overlaid by added tokens,
	// which win in Hugging Face's id_to_token.
	for _, id := range t.model.vocab {
		t.vocabSize = max(t.vocabSize, id+1)
	}
	for _, a := range f.AddedTokens {
		t.vocabSize = max(t.vocabSize, a.ID+1)
	}
	t.idToToken = make([]string, t.vocabSize)
	t.known = make([]bool, t.vocabSize)
	t.special = make([]bool, t.vocabSize)
	for tok, id := range t.model.vocab {
		t.idToToken[id], t.known[id] = tok, true
	}
	for _, a := range f.AddedTokens {
		t.idToToken[a.ID], t.known[a.ID], t.special[a.ID] = a.Content, true, a.Special
	}
	for _, id := range append(append([]int(nil), t.post...), t.postAfter...) {
		if id >= t.vocabSize || !t.known[id] {
			return nil, fmt.Errorf("tokenizer: post_processor: special token id %d is not in the vocabulary", id)
		}
	}
	return t, nil
}

func parseModel(raw json.RawMessage) (*bpe, error) {
	var m modelJSON
	if err := strictUnmarshal(raw, &m); err != nil {
		return nil, err
	}
	if m.Type != "BPE" {
		return nil, fmt.Errorf("model type %q is not supported (only BPE)", m.Type)
	}
	if m.Dropout != nil && *m.Dropout != 0 {
		return nil, errors.New("BPE dropout is not supported (it makes encoding random)")
	}
	if m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "" {
		return nil, errors.New("BPE continuing_subword_prefix is not supported")
	}
	if m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "" {
		return nil, errors.New("BPE end_of_word_suffix is not supported")
	}
	b := &bpe{
		vocab:        m.Vocab,
		merges:       make(map[uint64]merge, len(m.Merges)),
		unk:          -1,
		fuseUnk:      m.FuseUnk,
		byteFallback: m.ByteFallback,
		ignoreMerges: m.IgnoreMerges,
	}
	for tok, id := range m.Vocab {
		if id < 0 {
			return nil, fmt.Errorf("token %q has negative id %d", tok, id)
		}
	}
	if m.UnkToken != nil {
		id, ok := m.Vocab[*m.UnkToken]
		if !ok {
			return nil, fmt.Errorf("unk_token %q is not in the vocabulary", *m.UnkToken)
		}
		b.unk = id
	}
	for rank, raw := range m.Merges {
		var pair [2]string
		var line string
		if err := json.Unmarshal(raw, &line); err == nil {
			parts := strings.Split(line, " ")
			if len(parts) != 2 {
				return nil, fmt.Errorf("merge %d %q is not two tokens separated by a space", rank, line)
			}
			pair = [2]string{parts[0], parts[1]}
		} else if err := json.Unmarshal(raw, &pair); err != nil {
			return nil, fmt.Errorf("merge %d: %w", rank, err)
		}
		a, okA := m.Vocab[pair[0]]
		c, okC := m.Vocab[pair[1]]
		merged, okM := m.Vocab[pair[0]+pair[1]]
		if !okA || !okC || !okM {
			return nil, fmt.Errorf("merge %d (%q, %q) uses a token not in the vocabulary", rank, pair[0], pair[1])
		}
		// A repeated pair takes its last rank, as in Hugging Face's map.
		b.merges[pairKey(a, c)] = merge{rank: rank, id: merged}
	}
	return b, nil
}

func parseNormalizer(raw json.RawMessage) (normalizer, error) {
	c, err := parseComponent(raw)
	if err != nil {
		return nil, err
	}
	switch c.Type {
	case "Sequence":
		if err := c.only("normalizers"); err != nil {
			return nil, err
		}
		var seq normSequence
		for _, r := range c.Normalizers {
			n, err := parseNormalizer(r)
			if err != nil {
				return nil, err
			}
			seq = append(seq, n)
		}
		return seq, nil
	case "Prepend":
		if err := c.only("prepend"); err != nil {
			return nil, err
		}
		if c.Prepend == nil {
			return nil, errors.New("Prepend: missing prepend")
		}
		return normPrepend(*c.Prepend), nil
	case "Replace":
		if err := c.only("pattern", "content"); err != nil {
			return nil, err
		}
		return parseReplace(c)
	case "NFC":
		return normUnicode{norm.NFC}, c.only()
	case "NFD":
		return normUnicode{norm.NFD}, c.only()
	case "NFKC":
		return normUnicode{norm.NFKC}, c.only()
	case "NFKD":
		return normUnicode{norm.NFKD}, c.only()
	}
	return nil, fmt.Errorf("normalizer type %q is not supported", c.Type)
}

func parseReplace(c *component) (replace, error) {
	if c.Pattern == nil || c.Content == nil {
		return replace{}, errors.New("Replace: missing pattern or content")
	}
	if c.Pattern.String == nil {
		// Onig regex replacement semantics are not reproduced here.
		return replace{}, errors.New("Replace: only String patterns are supported")
	}
	if *c.Pattern.String == "" {
		return replace{}, errors.New("Replace: empty pattern")
	}
	return replace{old: *c.Pattern.String, new: *c.Content}, nil
}

func parsePreTokenizer(raw json.RawMessage) (preTokenizer, error) {
	c, err := parseComponent(raw)
	if err != nil {
		return nil, err
	}
	switch c.Type {
	case "Sequence":
		if err := c.only("pretokenizers"); err != nil {
			return nil, err
		}
		var seq preSequence
		for _, r := range c.PreTokenizers {
			p, err := parsePreTokenizer(r)
			if err != nil {
				return nil, err
			}
			seq = append(seq, p)
		}
		return seq, nil
	case "ByteLevel":
		// trim_offsets only changes offsets, which this package does not report.
		if err := c.only("add_prefix_space", "trim_offsets", "use_regex"); err != nil {
			return nil, err
		}
		return byteLevelPre{
			addPrefixSpace: c.AddPrefixSpace != nil && *c.AddPrefixSpace,
			useRegex:       c.UseRegex == nil || *c.UseRegex,
		}, nil
	case "Split":
		if err := c.only("pattern", "behavior", "invert"); err != nil {
			return nil, err
		}
		return parseSplit(c)
	case "Metaspace":
		if err := c.only("replacement", "prepend_scheme", "split", "add_prefix_space", "str_rep"); err != nil {
			return nil, err
		}
		m, err := parseMetaspace(c)
		return m, err
	}
	return nil, fmt.Errorf("pre-tokenizer type %q is not supported", c.Type)
}

func parseSplit(c *component) (preTokenizer, error) {
	if c.Pattern == nil || c.Behavior == nil {
		return nil, errors.New("Split: missing pattern or behavior")
	}
	s := split{invert: c.Invert != nil && *c.Invert}
	switch *c.Behavior {
	case "Isolated":
		s.behavior = isolated
	case "Removed":
		s.behavior = removed
	case "MergedWithPrevious":
		s.behavior = mergedWithPrevious
	case "MergedWithNext":
		s.behavior = mergedWithNext
	default:
		return nil, fmt.Errorf("Split: behavior %q is not supported", *c.Behavior)
	}
	switch {
	case c.Pattern.Regex != nil:
		re, err := compileRegex(*c.Pattern.Regex)
		if err != nil {
			return nil, fmt.Errorf("Split: %w", err)
		}
		s.re = re
	case c.Pattern.String != nil && *c.Pattern.String != "":
		s.literal = *c.Pattern.String
	default:
		return nil, errors.New("Split: empty pattern")
	}
	return s, nil
}

func parseMetaspace(c *component) (metaspace, error) {
	m := metaspace{replacement: '▁', scheme: prependAlways, split: c.Split == nil || *c.Split}
	if c.Replacement != nil {
		r, size := utf8.DecodeRuneInString(*c.Replacement)
		if size == 0 || size != len(*c.Replacement) {
			return m, fmt.Errorf("Metaspace: replacement %q is not one character", *c.Replacement)
		}
		m.replacement = r
	}
	switch {
	case c.PrependScheme != nil:
		switch *c.PrependScheme {
		case "always":
			m.scheme = prependAlways
		case "first":
			m.scheme = prependFirst
		case "never":
			m.scheme = prependNever
		default:
			return m, fmt.Errorf("Metaspace: prepend_scheme %q is not supported", *c.PrependScheme)
		}
	case c.AddPrefixSpace != nil && !*c.AddPrefixSpace:
		// Files from before prepend_scheme existed.
		m.scheme = prependNever
	}
	return m, nil
}

func parseDecoder(raw json.RawMessage) (decoder, error) {
	c, err := parseComponent(raw)
	if err != nil {
		return nil, err
	}
	switch c.Type {
	case "Sequence":
		if err := c.only("decoders"); err != nil {
			return nil, err
		}
		var seq decSequence
		for _, r := range c.Decoders {
			d, err := parseDecoder(r)
			if err != nil {
				return nil, err
			}
			seq = append(seq, d)
		}
		return seq, nil
	case "ByteLevel":
		return decByteLevel{}, c.only("add_prefix_space", "trim_offsets", "use_regex")
	case "Replace":
		if err := c.only("pattern", "content"); err != nil {
			return nil, err
		}
		r, err := parseReplace(c)
		return decReplace(r), err
	case "ByteFallback":
		return decByteFallback{}, c.only()
	case "Fuse":
		return decFuse{}, c.only()
	case "Strip":
		if err := c.only("content", "start", "stop"); err != nil {
			return nil, err
		}
		if c.Content == nil || utf8.RuneCountInString(*c.Content) != 1 || c.Start == nil || c.Stop == nil {
			return nil, errors.New("Strip: needs a one-character content, start and stop")
		}
		r, _ := utf8.DecodeRuneInString(*c.Content)
		return decStrip{content: r, start: *c.Start, stop: *c.Stop}, nil
	case "Metaspace":
		if err := c.only("replacement", "prepend_scheme", "split", "add_prefix_space", "str_rep"); err != nil {
			return nil, err
		}
		m, err := parseMetaspace(c)
		return decMetaspace(m), err
	}
	return nil, fmt.Errorf("decoder type %q is not supported", c.Type)
}

// parsePostProcessor returns the special-token ids placed before and after a
// single sequence.
func parsePostProcessor(raw json.RawMessage) (before, after []int, err error) {
	c, err := parseComponent(raw)
	if err != nil {
		return nil, nil, err
	}
	switch c.Type {
	case "Sequence":
		if err := c.only("processors"); err != nil {
			return nil, nil, err
		}
		for _, r := range c.Processors {
			b, a, err := parsePostProcessor(r)
			if err != nil {
				return nil, nil, err
			}
			// Each processor wraps the output of the previous one.
			before = append(b, before...)
			after = append(after, a...)
		}
		return before, after, nil
	case "ByteLevel":
		// Only adjusts offsets.
		return nil, nil, c.only("add_prefix_space", "trim_offsets", "use_regex")
	case "TemplateProcessing":
		if err := c.only("single", "pair", "special_tokens"); err != nil {
			return nil, nil, err
		}
		seen := false
		for _, item := range c.Single {
			switch {
			case item.Sequence != nil && item.SpecialToken == nil:
				if item.Sequence.ID != "A" || seen {
					return nil, nil, fmt.Errorf("TemplateProcessing: single template must hold sequence A once, not %q", item.Sequence.ID)
				}
				seen = true
			case item.SpecialToken != nil && item.Sequence == nil:
				sp, ok := c.SpecialTokens[item.SpecialToken.ID]
				if !ok {
					return nil, nil, fmt.Errorf("TemplateProcessing: special token %q is not defined", item.SpecialToken.ID)
				}
				if seen {
					after = append(after, sp.IDs...)
				} else {
					before = append(before, sp.IDs...)
				}
			default:
				return nil, nil, errors.New("TemplateProcessing: template item is neither SpecialToken nor Sequence")
			}
		}
		if !seen {
			return nil, nil, errors.New("TemplateProcessing: single template lacks sequence A")
		}
		return before, after, nil
	}
	return nil, nil, fmt.Errorf("post-processor type %q is not supported", c.Type)
}
