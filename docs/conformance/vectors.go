// Package conformance generates the language-neutral test vectors of
// docs/conformance/vectors.json from the Go implementation. The file is the
// conformance kit of docs/PROTOCOL.md and docs/PROTOCOL-WIRE.md: the Go tests
// (go test ./docs/conformance) regenerate it and require identical bytes, and
// check.py, written from the documents alone, recomputes every value.
//
// Regenerate after an intended change: go run ./docs/conformance/gen
package conformance

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"slices"
	"strconv"

	"github.com/zopeer/zopeer/model"
	"github.com/zopeer/zopeer/p2p"
	"github.com/zopeer/zopeer/store"
	"github.com/zopeer/zopeer/zo"
)

// Conventions of the file (also in its "conventions" member):
//   - uint64 values are decimal strings; uint32 and small integers are numbers;
//   - binary64 values are 16 hex digits of their IEEE-754 bits (big-endian),
//     float32 values 8 hex digits: exact in every language;
//   - byte strings are lower-case hex.

type obj = map[string]any

func u64(v uint64) string  { return strconv.FormatUint(v, 10) }
func f64(v float64) string { return fmt.Sprintf("%016x", math.Float64bits(v)) }
func f32(v float32) string { return fmt.Sprintf("%08x", math.Float32bits(v)) }
func hx(b []byte) string   { return hex.EncodeToString(b) }
func mhex(m uint64) string { return fmt.Sprintf("%016x", m) }
func seedKey(b ...byte) ed25519.PrivateKey {
	s := make([]byte, 32)
	copy(s, b)
	return ed25519.NewKeyFromSeed(s)
}

const run = "example"

var (
	keyA = seedKey(bytes.Repeat([]byte{1}, 32)...) // the wire example's key: little proof of work
	keyP = seedKey(0xca, 0x39)                     // PowBits("example", pub) = 18
)

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// Generate builds the vectors file.
func Generate() ([]byte, error) {
	v := obj{
		"version":   1,
		"documents": "docs/PROTOCOL.md and docs/PROTOCOL-WIRE.md (revision 2)",
		"conventions": "uint64: decimal strings; binary64: 16 hex digits of the IEEE-754 bits; float32: 8 hex digits; " +
			"bytes: lower-case hex; machine ids also as 16 hex digits where named *_hex",
	}
	var err error
	v["philox"] = philoxVectors()
	v["seeds"] = seedVectors()
	v["code"] = codeVectors()
	if v["engine"], err = engineVectors(); err != nil {
		return nil, err
	}
	if v["layouts"], err = layoutVectors(); err != nil {
		return nil, err
	}
	v["trainable"] = trainableVectors()
	v["digests"] = digestVectors()
	v["identities"] = identityVectors()
	v["ed25519"] = ed25519Vectors()
	if v["manifests"], err = manifestVectors(); err != nil {
		return nil, err
	}
	v["excess"] = excessVectors()
	if v["batches"], err = batchVectors(); err != nil {
		return nil, err
	}
	if v["evidence"], err = evidenceVectors(); err != nil {
		return nil, err
	}
	if v["pools"], err = poolVectors(); err != nil {
		return nil, err
	}
	v["states"] = stateVectors()
	v["sync"] = syncVectors()
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func philoxVectors() []obj {
	var out []obj
	for _, c := range []struct {
		ctr [4]uint32
		key [2]uint32
	}{
		{[4]uint32{0, 0, 0, 0}, [2]uint32{0, 0}},
		{[4]uint32{^uint32(0), ^uint32(0), ^uint32(0), ^uint32(0)}, [2]uint32{^uint32(0), ^uint32(0)}},
		{[4]uint32{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, [2]uint32{0xa4093822, 0x299f31d0}},
	} {
		out = append(out, obj{"counter": c.ctr, "key": c.key, "out": zo.Philox4x32(c.ctr, c.key)})
	}
	return out
}

func seedVectors() []obj {
	var out []obj
	for _, c := range []struct {
		run     string
		machine uint64
		sample  uint64
	}{{"", 0, 0}, {run, p2p.MachineOf(pubOf(keyP)), 0}, {run, 1, 2}, {"ünïcode", ^uint64(0), ^uint64(0)}} {
		s := zo.DeriveSeed(c.run, c.machine, c.sample)
		blocks := obj{}
		for _, b := range []uint64{0, 1, 1<<32 + 3} {
			blocks[u64(b)] = s.Block(b)
		}
		rad := make([]int32, 260)
		zo.Rademacher.Fill(s, 0, rad)
		g := make([]int32, 12)
		zo.Gauss4.Fill(s, 0, g)
		far := make([]int32, 1)
		zo.Rademacher.Fill(s, 1<<40+77, far)
		gfar := make([]int32, 1)
		zo.Gauss4.Fill(s, 1<<40+77, gfar)
		out = append(out, obj{
			"run": c.run, "machine": u64(c.machine), "sample": u64(c.sample),
			"key": s.Key, "stream": s.Stream, "blocks": blocks,
			"code_uniform_block": s.Block(1 << 63), "code_uniform": f64(s.CodeUniform()),
			"coeff_uniform_block_0": s.Block(1<<63 + 1<<62), "coeff_uniforms": []string{f64(s.CoeffUniform(0)), f64(s.CoeffUniform(1)), f64(s.CoeffUniform(2))},
			"rademacher_0_260": rad, "gauss4_0_12": g,
			"rademacher_at_1099511627853": far[0], "gauss4_at_1099511627853": gfar[0],
		})
	}
	return out
}

func codeVectors() obj {
	var limits []obj
	for _, c := range []struct {
		exp   uint8
		bound float64
	}{{120, 0}, {127, 1}, {130, 1}, {127, 0.75}, {100, 1}, {0, 1e-40}, {255, 1e30}, {200, 3e21}, {128, -1}} {
		limits = append(limits, obj{"exp": c.exp, "bound": f64(c.bound), "limit": zo.CodeLimit(c.exp, c.bound)})
	}
	var quant []obj
	m := p2p.MachineOf(pubOf(keyP))
	for _, c := range []struct {
		g     []float64
		bound float64
	}{
		{[]float64{0.3, -1.7, 0, 2.5e-3}, 0},
		{[]float64{0.3, -1.7, 0, 2.5e-3}, 1},
		{[]float64{0.998, -0.5}, 0},
		{[]float64{0, 0, 0}, 0},
		{[]float64{1e-40, -3e-41}, 0},
		{[]float64{1e40}, 0},
		{[]float64{1e60}, 0},
		{[]float64{1, math.NaN()}, 0},
		{[]float64{5, -0.01}, 0.25},
	} {
		u := make([]float64, len(c.g))
		var us, gs []string
		for j := range c.g {
			u[j] = zo.DeriveSeed(run, m, uint64(j)).CodeUniform()
			us, gs = append(us, f64(u[j])), append(gs, f64(c.g[j]))
		}
		codes := make([]int8, len(c.g))
		exp, err := zo.QuantizeBounded(c.g, u, codes, c.bound)
		o := obj{"run": run, "machine": u64(m), "g": gs, "bound": f64(c.bound), "uniforms": us}
		if err != nil {
			o["error"] = true
		} else {
			o["exp"], o["codes"] = exp, codes
		}
		quant = append(quant, o)
	}
	var deq []obj
	for _, c := range []struct {
		exp  uint8
		code int8
	}{{0, 1}, {128, -127}, {255, 127}, {121, 5}} {
		deq = append(deq, obj{"exp": c.exp, "code": c.code, "value": f64(zo.Dequantize(c.exp, c.code))})
	}
	return obj{"code_limit": limits, "quantize": quant, "dequantize": deq,
		"note": "quantize: uniforms are the code uniforms of (run, machine, sample j); error: the samples are dropped"}
}

// engineTensors is the tiny model of the engine vectors: a trainable
// matrix, a frozen all-zero vector (it keeps its offset and its index), and
// a trainable vector of 130 elements (a partial Philox block).
func engineTensors() []zo.TensorSpec {
	c := make([]float32, 130)
	for i := range c {
		c[i] = float32(i*37%101-50) / 1000
	}
	return []zo.TensorSpec{
		{Name: "a.weight", Shape: []int{2, 3}, Data: []float32{0.1, -0.7, 0.33, 1.5, -1e-3, 0}, Trainable: true},
		{Name: "b.zero", Shape: []int{5}, Data: make([]float32, 5)},
		{Name: "c.bias", Shape: []int{130}, Data: c, Trainable: true},
	}
}

func engineVectors() ([]obj, error) {
	var out []obj
	mP, mA := p2p.MachineOf(pubOf(keyP)), p2p.MachineOf(pubOf(keyA))
	for _, cfg := range []zo.Config{
		{Run: run, Dist: zo.Rademacher, Eps: 1e-3, LR: 0.01, Warmup: 4, Decay: 100},
		{Run: run, Dist: zo.Gauss4, Eps: 1e-2, LR: 0.001},
		// §3.1 estimators: the two trainable tensors in two groups, the
		// second one's perturbation and step scaled by 2^-3, the first by 2^2.
		{Run: run, Dist: zo.Rademacher, Eps: 1e-3, LR: 0.01, Estimator: zo.Estimator{Parts: 2, Scale: map[string]int{"a.weight": 2, "c.bias": -3}}},
	} {
		specs := engineTensors()
		var ts []obj
		for _, s := range specs {
			var bits []string
			for _, x := range s.Data {
				bits = append(bits, f32(x))
			}
			ts = append(ts, obj{"name": s.Name, "shape": s.Shape, "trainable": s.Trainable, "base_f32": bits})
		}
		w, err := zo.NewWeights(specs)
		if err != nil {
			return nil, err
		}
		e, err := zo.NewEngine(cfg, w)
		if err != nil {
			return nil, err
		}
		layout := func() []obj {
			var l []obj
			for ti, t := range w.Tensors {
				l = append(l, obj{"offset": u64(t.Offset), "exp": t.Exp, "eps_grid": e.EpsGrid(ti), "q": slices.Clone(t.Q)})
			}
			return l
		}
		h := w.Hash()
		c := obj{
			"run": cfg.Run, "dist": cfg.Dist.String(), "eps": f64(cfg.Eps), "lr": f64(cfg.LR),
			"lr_warmup": u64(cfg.Warmup), "lr_decay": u64(cfg.Decay), "tensors": ts,
			"base": obj{"layout": layout(), "weights_hash": hx(h[:])},
		}
		us := []zo.Update{{Machine: mP, Sample: 0, Exp: 120, Code: 37}, {Machine: mA, Sample: 5, Exp: 121, Code: -90}}
		var uo []obj
		for _, u := range us {
			s := zo.DeriveSeed(cfg.Run, u.Machine, u.Sample)
			var coeffs []int32
			for ti := range w.Tensors {
				coeffs = append(coeffs, e.Coeff(u, s, ti))
			}
			uh := zo.UpdateHash(u)
			uo = append(uo, obj{"machine": u64(u.Machine), "sample": u64(u.Sample), "exp": u.Exp, "code": u.Code,
				"lr_at_sample": f64(cfg.LRAt(u.Sample)), "grad": f64(u.Grad()), "coeffs": coeffs, "update_hash": hx(uh[:])})
		}
		c["updates"] = uo
		if !cfg.Estimator.IsZero() {
			c["estimator"] = obj{"parts": cfg.Estimator.Parts, "scale": cfg.Estimator.Scale}
			var parts []int
			for _, u := range us {
				parts = append(parts, zo.DeriveSeed(cfg.Run, u.Machine, u.Sample).Part(cfg.Estimator.Parts))
			}
			c["update_parts"] = parts
		}
		var steps []obj
		var d zo.SetDigest
		step := func(what string, idx int, remove bool, exclude bool) {
			u := us[idx]
			if remove {
				e.Remove([]zo.Update{u})
				d.Sub(u)
			} else {
				e.Apply([]zo.Update{u})
				d.Add(u)
			}
			if exclude {
				d.AddHash(zo.ExclusionHash(u.Machine))
			}
			h := w.Hash()
			steps = append(steps, obj{"do": what, "update": idx, "layout": layout(), "weights_hash": hx(h[:]), "set_digest": d.String()})
		}
		step("apply", 0, false, false)
		step("apply", 1, false, false)
		step("exclude_machine_of", 1, true, true) // remove its update, add its exclusion hash
		step("remove", 0, true, false)
		c["steps"] = steps
		c["note"] = "steps run in order from the base; exclude_machine_of removes that update (§6.1) and adds the machine's exclusion hash to the set digest (§7)"
		out = append(out, c)
	}
	return out, nil
}

func layoutVectors() ([]obj, error) {
	var out []obj
	for _, cfg := range []string{
		`{"model_type":"gpt2","vocab_size":8,"n_embd":4,"n_layer":2,"n_head":2,"n_positions":4}`,
		`{"model_type":"gpt2","vocab_size":8,"n_embd":4,"n_layer":1,"n_head":2,"n_positions":4,"n_inner":6}`,
		`{"model_type":"llama","vocab_size":8,"hidden_size":4,"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1,"intermediate_size":6,"max_position_embeddings":16,"tie_word_embeddings":false}`,
		`{"model_type":"llama","vocab_size":8,"hidden_size":4,"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1,"intermediate_size":6,"max_position_embeddings":16,"tie_word_embeddings":true,"attention_bias":true,"mlp_bias":true}`,
		`{"model_type":"qwen2","vocab_size":8,"hidden_size":4,"num_hidden_layers":2,"num_attention_heads":2,"num_key_value_heads":1,"intermediate_size":6,"max_position_embeddings":16,"tie_word_embeddings":true}`,
		`{"model_type":"qwen2","vocab_size":8,"hidden_size":4,"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":2,"head_dim":4,"intermediate_size":6,"max_position_embeddings":16,"tie_word_embeddings":false}`,
	} {
		c, err := model.ParseConfig([]byte(cfg))
		if err != nil {
			return nil, err
		}
		var specs []zo.TensorSpec
		for _, p := range model.NewRandom(c, 1).Params() {
			specs = append(specs, zo.TensorSpec(p))
		}
		w, err := zo.NewWeights(specs)
		if err != nil {
			return nil, err
		}
		var ts []obj
		for _, t := range w.Tensors {
			ts = append(ts, obj{"name": t.Name, "shape": t.Shape, "offset": u64(t.Offset)})
		}
		out = append(out, obj{"config": cfg, "tensors": ts})
	}
	return out, nil
}

func trainableVectors() []obj {
	names := []string{"transformer.wte.weight", "transformer.h.0.ln_1.weight", "transformer.h.0.attn.c_attn.bias",
		"transformer.h.10.mlp.c_fc.weight", "model.layers.0.self_attn.q_proj.weight", "lm_head.weight"}
	var out []obj
	for _, pat := range []string{"", `^transformer\.h\.0\.`, `bias$`, `attn`, `h\.1`, `(?i)LN_`, `q_proj|lm_head`} {
		var flags []bool
		for _, n := range names {
			flags = append(flags, pat == "" || regexp.MustCompile(pat).MatchString(n))
		}
		out = append(out, obj{"pattern": pat, "names": names, "trainable": flags})
	}
	return out
}

func digestVectors() obj {
	var excl []obj
	for _, m := range []uint64{0, 1, ^uint64(0), p2p.MachineOf(pubOf(keyP))} {
		h := zo.ExclusionHash(m)
		excl = append(excl, obj{"machine": u64(m), "hash": hx(h[:])})
	}
	var d zo.SetDigest
	var terms []string
	for _, u := range []zo.Update{{Machine: 1, Sample: 2, Exp: 128, Code: -127}, {Machine: ^uint64(0), Sample: 7, Exp: 255, Code: 127}, {Machine: 0, Sample: 0, Exp: 0, Code: 0}} {
		h := zo.UpdateHash(u)
		terms = append(terms, hx(h[:]))
		d.Add(u)
	}
	d.AddHash(zo.ExclusionHash(9))
	x := zo.ExclusionHash(9)
	terms = append(terms, hx(x[:]))
	var updates []obj
	for _, u := range []zo.Update{{Machine: 0, Sample: 0, Exp: 0, Code: 0}, {Machine: 1, Sample: 2, Exp: 128, Code: -127}, {Machine: ^uint64(0), Sample: 7, Exp: 255, Code: 127}} {
		h := zo.UpdateHash(u)
		updates = append(updates, obj{"machine": u64(u.Machine), "sample": u64(u.Sample), "exp": u.Exp, "code": u.Code, "hash": hx(h[:])})
	}
	// A sum that carries across every byte: the digest wraps modulo 2^256.
	var w zo.SetDigest
	var ff [32]byte
	for i := range ff {
		ff[i] = 0xff
	}
	w.AddHash(ff)
	w.AddHash([32]byte{2})
	return obj{"update_hashes": updates, "exclusion_hashes": excl,
		"set_digest": obj{"terms": terms, "digest": d.String()},
		"wrap":       obj{"terms": []string{hx(ff[:]), hx([]byte{2, 31: 0})}, "digest": w.String()}}
}

func identityVectors() []obj {
	var out []obj
	for _, k := range []ed25519.PrivateKey{keyA, keyP} {
		pub := pubOf(k)
		m := p2p.MachineOf(pub)
		out = append(out, obj{"seed": hx(k.Seed()), "public_key": hx(pub), "machine": u64(m), "machine_hex": mhex(m),
			"run": run, "run_tag": tagHex(run), "pow_bits": p2p.PowBits(run, pub)})
	}
	return out
}

var groupOrder, _ = new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)

func le(b []byte) *big.Int { c := slices.Clone(b); slices.Reverse(c); return new(big.Int).SetBytes(c) }
func leBytes(n *big.Int) []byte {
	b := n.FillBytes(make([]byte, 32))
	slices.Reverse(b)
	return b
}

// forgeIdentity is a signature that Go's crypto/ed25519 accepts for any
// message under a key encoding the identity point: R = [S]B.
func forgeIdentity() []byte {
	sd := make([]byte, 32)
	sd[0] = 7
	r := pubOf(ed25519.NewKeyFromSeed(sd))
	h := sha512.Sum512(sd)
	s := h[:32]
	s[0] &= 248
	s[31] &= 127
	s[31] |= 64
	return append(slices.Clone([]byte(r)), leBytes(new(big.Int).Mod(le(s), groupOrder))...)
}

func ed25519Vectors() obj {
	var keys []obj
	for _, h := range []string{
		hx(pubOf(keyA)), hx(pubOf(keyP)),
		"0000000000000000000000000000000000000000000000000000000000000000",
		"0000000000000000000000000000000000000000000000000000000000000080",
		"0100000000000000000000000000000000000000000000000000000000000000",
		"0100000000000000000000000000000000000000000000000000000000000080",
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	} {
		b, _ := hex.DecodeString(h)
		keys = append(keys, obj{"public_key": h, "strict": p2p.StrictKey(b)})
	}
	msg := []byte("zopeer/batch/1 conformance")
	good := ed25519.Sign(keyP, msg)
	sPlusL := append(slices.Clone(good[:32]), leBytes(new(big.Int).Add(le(good[32:]), groupOrder))...)
	flipped := slices.Clone(good)
	flipped[5] ^= 1
	forged := forgeIdentity()
	ident, _ := hex.DecodeString("0100000000000000000000000000000000000000000000000000000000000000")
	identNC, _ := hex.DecodeString("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")
	var sigs []obj
	for _, c := range []struct {
		name     string
		pub, sig []byte
	}{
		{"valid", pubOf(keyP), good},
		{"S + group order (non-canonical S)", pubOf(keyP), sPlusL},
		{"flipped bit in R", pubOf(keyP), flipped},
		{"forgery under the identity key (small order)", ident, forged},
		{"forgery under a non-canonical identity key", identNC, forged},
	} {
		sigs = append(sigs, obj{"name": c.name, "public_key": hx(c.pub), "message": hx(msg), "signature": hx(c.sig),
			"go_crypto_ed25519_verify": ed25519.Verify(c.pub, msg, c.sig), "valid": p2p.StrictKey(c.pub) && ed25519.Verify(c.pub, msg, c.sig)})
	}
	return obj{"keys": keys, "signatures": sigs}
}

func manifestVectors() ([]obj, error) {
	m := store.Manifest{Run: run, Dist: "rademacher", Eps: 1e-3, LR: 1e-4, LRWarmup: 100, Quant: "zo1-byte-bfp/int32-grid28",
		Params: map[string]string{"trainable": `^transformer\.h\.`}, GradBound: 0.0625, MaxSamples: 1 << 22, PowBits: 20}
	m.BaseDigest = sha256.Sum256([]byte("base"))
	closed := m
	closed.Admission, closed.PowBits = store.AdmissionClosed, 0
	closed.Admit = []string{mhex(p2p.MachineOf(pubOf(keyP)))}
	closed.Run, closed.Eps, closed.LR, closed.GradBound = "ünï\"code\n", 1.5e-7, 3e21, 0
	closed.Params = map[string]string{"trainable": "", "é": "x", "z": "\u0001"}
	oldDigest, _ := json.Marshal([32]byte(m.BaseDigest))
	sourced := m
	sourced.Model = &store.ModelSource{Name: "HuggingFaceTB/SmolLM-135M", Revision: "main", Path: "/models/smollm", SHA256: hx(m.BaseDigest[:])}
	embedded := m
	embedded.Model = &store.ModelSource{Embedded: true}
	pooled := m
	pooled.Pool = 1024
	estimated := m
	estimated.Estimator = &store.EstimatorSpec{Parts: 4, Scale: map[string]int{"transformer.wte.weight": -2, "é": 3, "z": 0}}
	onesided := m
	onesided.Estimator = &store.EstimatorSpec{OneSided: 4, Scale: map[string]int{"transformer.wte.weight": -8}}
	base := `{"run":"x","dist":"rademacher","eps":1,"lr":0,"quant":"q","base_digest":"` + hx(m.BaseDigest[:]) + `",`
	inputs := []string{
		mustCanon(m), mustCanon(closed), mustCanon(sourced), mustCanon(embedded), mustCanon(pooled), mustCanon(estimated), mustCanon(onesided),
		base + `"estimator":{"onesided":0}}`,
		base + `"estimator":{"onesided":-1}}`,
		base + `"estimator":{"parts":0,"scale":{"a":0}}}`,
		base + `"estimator":{"parts":2,"rank":4}}`,
		base + `"estimator":{"scale":{"a":1,"a":2}}}`,
		base + `"estimator":{"scale":{"a":1.5}}}`,
		`{"run":"x","dist":"rademacher","eps":1,"lr":0,"quant":"q","base_digest":"` + hx(m.BaseDigest[:]) + `","model":{"nmae":"typo"}}`,
		`{
  "format_version": 0,
  "run": "example",
  "base_digest": ` + string(oldDigest) + `,
  "dist": "rademacher",
  "eps": 1e-3,
  "lr": 1E-4,
  "lr_warmup": 100,
  "quant": "zo1-byte-bfp/int32-grid28",
  "params": {"trainable": "^transformer\\.h\\."},
  "grad_bound": 0.0625,
  "max_samples": 4194304,
  "pow_bits": 20
}
`,
		`{"run":"x","dist":"rademacher","eps":1,"lr":0,"quant":"q","base_digest":"` + hx(m.BaseDigest[:]) + `","lr_decay":0,"admit":[],"params":{}}`,
		`{"run":"x","dist":"rademacher","eps":1,"lr":0,"quant":"q","base_digest":"` + hx(m.BaseDigest[:]) + `","new_rule":1}`,
		`{"run":"x","run":"y"}`,
		`{"Run":"x"}`,
		`{"format_version":2,"run":"x"}`,
		`{"base_digest":"ABCD"}`,
		`{"run":"x"} {}`,
	}
	var out []obj
	for _, in := range inputs {
		o := obj{"input": in}
		pm, err := store.ParseManifest([]byte(in))
		if err == nil {
			var c []byte
			if c, err = pm.Canonical(); err == nil {
				sum := sha256.Sum256(c)
				o["canonical"], o["sha256"] = string(c), hx(sum[:])
			}
		}
		o["valid"] = err == nil
		out = append(out, o)
	}
	return out, nil
}

func mustCanon(m store.Manifest) string {
	b, err := m.Canonical()
	if err != nil {
		panic(err)
	}
	return string(b)
}

// context is a run's manifest as the batch vectors use it.
type context struct {
	name string
	m    store.Manifest
}

func contexts() []context {
	open := store.Manifest{Run: run, GradBound: 1, MaxSamples: 1000, PowBits: 16}
	closed := store.Manifest{Run: run, GradBound: 1, MaxSamples: 1000, Admission: store.AdmissionClosed,
		Admit: []string{mhex(p2p.MachineOf(pubOf(keyP)))}, PowBits: 16}
	public := open
	public.Data = &store.PublicData{Digest: store.Digest{1, 2, 3}, BatchSize: 4, Tolerance: 0.125}
	pro := open
	pro.Pool, pro.PoolChoices = 64, 4
	return []context{{"open", open}, {"closed", closed}, {"public", public}, {"pro", pro}}
}

// rawBatch encodes a batch by hand (for malformed ones) and signs it.
func rawBatch(k ed25519.PrivateKey, version byte, runName string, first, count []byte, exp byte, codes []byte) []byte {
	tag := p2p.NewRunTag(runName)
	b := append([]byte{version}, tag[:]...)
	b = append(b, pubOf(k)...)
	b = append(b, first...)
	b = append(b, count...)
	b = append(b, exp)
	b = append(b, codes...)
	return append(b, ed25519.Sign(k, append([]byte("zopeer/batch/1"), b...))...)
}

func uv(v uint64) []byte { return binary.AppendUvarint(nil, v) }

// extBlock returns codes followed by an extension block holding parts
// (each already a record or part of one) concatenated.
func extBlock(codes []byte, parts ...[]byte) []byte {
	body := bytes.Join(parts, nil)
	return append(append(slices.Clone(codes), uv(uint64(len(body)))...), body...)
}

// Basis values (extension type 1) for the batch vectors.
var (
	basis  = p2p.AppendBasis(nil, p2p.Basis{{Machine: 7, Samples: p2p.Ranges{{Lo: 0, Hi: 99}}}})
	basis2 = p2p.AppendBasis(nil, p2p.Basis{
		{Machine: 7, Samples: p2p.Ranges{{Lo: 0, Hi: 9}, {Lo: 20, Hi: 20}}},
		{Machine: 1 << 63, Samples: p2p.Ranges{{Lo: 5, Hi: 300}}},
	})
	ownBasis = p2p.AppendBasis(nil, p2p.Basis{{Machine: p2p.MachineOf(pubOf(keyP)), Samples: p2p.Ranges{{Lo: 0, Hi: 300}}}})
	// Machines 9 then 8, one range [0, 0] each.
	basisBad = slices.Concat([]byte{2}, binary.BigEndian.AppendUint64(nil, 9), []byte{1, 0, 0}, binary.BigEndian.AppendUint64(nil, 8), []byte{1, 0, 0})
)

func batchVectors() (obj, error) {
	good := rawBatch(keyP, 1, run, uv(300), uv(5), 127, []byte{1, 0xff, 2, 0xfe, 0})
	valid2 := rawBatch(keyP, 1, run, uv(997), uv(3), 127, []byte{1, 1, 1})
	longCodes := bytes.Repeat([]byte{0}, 4096)
	sPlusL := slices.Clone(good)
	sig := sPlusL[len(sPlusL)-32:]
	copy(sig, leBytes(new(big.Int).Add(le(sig), groupOrder)))
	flipped := slices.Clone(good)
	flipped[len(flipped)-40] ^= 0x10
	// Forgeries under the identity key: Go's crypto/ed25519 accepts them.
	forge := func(pub string) []byte {
		p, _ := hex.DecodeString(pub)
		tag := p2p.NewRunTag(run)
		b := append([]byte{1}, tag[:]...)
		b = append(append(b, p...), 0x05, 0x01, 127, 1)
		return append(b, forgeIdentity()...)
	}
	cases := []struct {
		name, ctx string
		raw       []byte
	}{
		{"valid", "open", good},
		{"valid at the sample cap's edge (samples 997..999)", "open", valid2},
		{"valid in the closed run (admitted machine)", "closed", good},
		{"one byte short", "open", good[:len(good)-1]},
		{"one trailing byte", "open", append(slices.Clone(good), 0)},
		{"shorter than any batch", "open", good[:100]},
		{"longer than 4214 bytes", "open", rawBatch(keyP, 1, run, uv(0), uv(4096), 127, append(longCodes, bytes.Repeat([]byte{0}, 9)...))},
		{"non-minimal varint (first = 0x80 0x00)", "open", rawBatch(keyP, 1, run, []byte{0x80, 0x00}, uv(1), 127, []byte{1})},
		{"count 0", "open", rawBatch(keyP, 1, run, uv(3), uv(0), 127, nil)},
		{"count 4097", "open", rawBatch(keyP, 1, run, uv(0), uv(4097), 127, append(slices.Clone(longCodes), 0))},
		{"first + count − 1 overflows 2^64", "open", rawBatch(keyP, 1, run, uv(^uint64(0)), uv(2), 127, []byte{0, 0})},
		{"code 0x80", "open", rawBatch(keyP, 1, run, uv(300), uv(2), 127, []byte{1, 0x80})},
		{"version 3", "open", rawBatch(keyP, 3, run, uv(300), uv(1), 127, []byte{1})},
		{"v2: valid, basis extension", "open", rawBatch(keyP, 2, run, uv(300), uv(3), 127, extBlock([]byte{1, 1, 1}, []byte{1, byte(len(basis))}, basis))},
		{"v2: valid, basis of two machines and two ranges", "open", rawBatch(keyP, 2, run, uv(300), uv(1), 127, extBlock([]byte{1}, []byte{1, byte(len(basis2))}, basis2))},
		{"v2: no extension block", "open", rawBatch(keyP, 2, run, uv(300), uv(1), 127, []byte{1})},
		{"v2: empty extension block", "open", rawBatch(keyP, 2, run, uv(300), uv(1), 127, []byte{1, 0})},
		{"v2: unknown extension type 9", "open", rawBatch(keyP, 2, run, uv(300), uv(1), 127, extBlock([]byte{1}, []byte{9, 1, 0}))},
		{"v2: extension types not increasing", "open", rawBatch(keyP, 2, run, uv(300), uv(1), 127, extBlock([]byte{1}, []byte{1, byte(len(basis))}, basis, []byte{1, byte(len(basis))}, basis))},
		{"v2: record longer than the block", "open", rawBatch(keyP, 2, run, uv(300), uv(1), 127, extBlock([]byte{1}, []byte{1, byte(len(basis) + 1)}, basis))},
		{"v2: block longer than 16384 bytes", "open", rawBatch(keyP, 2, run, uv(300), uv(1), 127, append([]byte{1}, append(uv(16385), bytes.Repeat([]byte{0}, 16385)...)...))},
		{"public data: valid v2 batch with a basis", "public", rawBatch(keyP, 2, run, uv(300), uv(3), 127, extBlock([]byte{1, 1, 1}, []byte{1, byte(len(basis))}, basis))},
		{"public data: a version 1 batch states no basis", "public", good},
		{"public data: the basis names the batch's own sample 300", "public", rawBatch(keyP, 2, run, uv(300), uv(1), 127, extBlock([]byte{1}, []byte{1, byte(len(ownBasis))}, ownBasis))},
		{"v2: basis machines out of order", "open", rawBatch(keyP, 2, run, uv(300), uv(1), 127, extBlock([]byte{1}, []byte{1, byte(len(basisBad))}, basisBad))},
		{"another run", "open", rawBatch(keyP, 1, "other", uv(300), uv(1), 127, []byte{1})},
		{"signature: flipped bit", "open", flipped},
		{"signature: S + group order", "open", sPlusL},
		{"signature: forgery under the identity key (small order)", "open", forge("0100000000000000000000000000000000000000000000000000000000000000")},
		{"signature: forgery under a non-canonical identity key", "open", forge("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")},
		{"not admitted (closed run)", "closed", rawBatch(keyA, 1, run, uv(300), uv(1), 127, []byte{1})},
		{"sample cap (samples 998..1000)", "open", rawBatch(keyP, 1, run, uv(998), uv(3), 127, []byte{1, 1, 1})},
		{"sample cap (first beyond it)", "open", rawBatch(keyP, 1, run, uv(5000), uv(1), 127, []byte{0})},
		{"bound (code 3 at exp 127: 1.5 > 1)", "open", rawBatch(keyP, 1, run, uv(300), uv(2), 127, []byte{1, 3})},
		{"bound (code −1 at exp 129: 2 > 1)", "open", rawBatch(keyP, 1, run, uv(300), uv(1), 129, []byte{0xff})},
		{"proof of work (key with too few bits)", "open", rawBatch(keyA, 1, run, uv(300), uv(1), 127, []byte{1})},
		{"closed runs ignore pow_bits", "closed", rawBatch(keyP, 1, run, uv(0), uv(1), 127, []byte{2})},
		{"pool: valid v2 batch with slots 0, 3, 1", "pro", rawBatch(keyP, 2, run, uv(300), uv(3), 127, extBlock([]byte{1, 1, 1}, []byte{2, 3, 0, 3, 1}))},
		{"pool: valid, basis and slots", "pro", rawBatch(keyP, 2, run, uv(300), uv(3), 127, extBlock([]byte{1, 1, 1}, []byte{1, byte(len(basis))}, basis, []byte{2, 3, 2, 2, 2}))},
		{"pool: a version 1 batch carries no slots", "pro", good},
		{"pool: slot 4 of 4", "pro", rawBatch(keyP, 2, run, uv(300), uv(3), 127, extBlock([]byte{1, 1, 1}, []byte{2, 3, 0, 4, 1}))},
		{"pool: slots in a run without pool_choices", "open", rawBatch(keyP, 2, run, uv(300), uv(3), 127, extBlock([]byte{1, 1, 1}, []byte{2, 3, 0, 3, 1}))},
		{"v2: 2 slots for 3 updates", "pro", rawBatch(keyP, 2, run, uv(300), uv(3), 127, extBlock([]byte{1, 1, 1}, []byte{2, 2, 0, 3}))},
		{"v2: 4 slots for 3 updates", "pro", rawBatch(keyP, 2, run, uv(300), uv(3), 127, extBlock([]byte{1, 1, 1}, []byte{2, 4, 0, 3, 1, 1}))},
		{"v2: empty slot record", "pro", rawBatch(keyP, 2, run, uv(300), uv(3), 127, extBlock([]byte{1, 1, 1}, []byte{2, 0}))},
	}
	var cs []obj
	for _, c := range contexts() {
		canon, err := c.m.Canonical()
		if err != nil {
			return nil, err
		}
		cs = append(cs, obj{"name": c.name, "manifest": string(canon)})
	}
	var out []obj
	for _, c := range cases {
		var m store.Manifest
		for _, x := range contexts() {
			if x.name == c.ctx {
				m = x.m
			}
		}
		rules, err := m.Rules()
		if err != nil {
			return nil, err
		}
		pow := m.PowBits
		if m.Closed() {
			pow = 0
		}
		o := obj{"name": c.name, "context": c.ctx, "hex": hx(c.raw)}
		b, reason, err := p2p.AdmitBatch(c.raw, m.Run, rules, pow)
		if err != nil {
			o["verdict"], o["reason"] = "reject", reason
		} else {
			o["verdict"] = "accept"
			o["machine"], o["first"], o["exp"], o["codes"] = u64(b.Machine), u64(b.First), b.Exp, b.Codes
			if len(b.Exts) > 0 {
				var es []obj
				for _, e := range b.Exts {
					es = append(es, obj{"type": e.Type, "hex": hx(e.Value)})
				}
				o["exts"] = es
			}
		}
		out = append(out, o)
	}
	return obj{"contexts": cs, "cases": out,
		"note": "contexts: the run's manifest (canonical); verdicts are the Reject rows of PROTOCOL-WIRE.md §3.2 only"}, nil
}

func evidenceVectors() ([]obj, error) {
	a := rawBatch(keyP, 1, run, uv(300), uv(2), 127, []byte{1, 1})
	b := rawBatch(keyP, 1, run, uv(301), uv(1), 127, []byte{2})
	same := rawBatch(keyP, 1, run, uv(301), uv(1), 127, []byte{1})
	apart := rawBatch(keyP, 1, run, uv(302), uv(1), 127, []byte{5})
	other := rawBatch(keyA, 1, run, uv(301), uv(1), 127, []byte{2})
	expOnly := rawBatch(keyP, 1, run, uv(301), uv(1), 126, []byte{1})
	// FedKSeed-Pro batches (slots, extension type 2): sample 301 has code 1 in each.
	slotA := rawBatch(keyP, 2, run, uv(300), uv(2), 127, extBlock([]byte{1, 1}, []byte{2, 2, 0, 1}))
	slotSame := rawBatch(keyP, 2, run, uv(301), uv(1), 127, extBlock([]byte{1}, []byte{2, 1, 1}))
	slotOther := rawBatch(keyP, 2, run, uv(301), uv(1), 127, extBlock([]byte{1}, []byte{2, 1, 2}))
	bad := slices.Clone(b)
	bad[len(bad)-1] ^= 1
	enc := func(kind byte, x, y []byte, runName string) []byte {
		tag := p2p.NewRunTag(runName)
		e := append([]byte{1}, tag[:]...)
		e = append(e, kind)
		e = append(append(e, uv(uint64(len(x)))...), x...)
		return append(append(e, uv(uint64(len(y)))...), y...)
	}
	lo, hi := a, b
	if bytes.Compare(lo, hi) > 0 {
		lo, hi = hi, lo
	}
	order := func(x, y []byte) ([]byte, []byte) {
		if bytes.Compare(x, y) > 0 {
			return y, x
		}
		return x, y
	}
	s1, s2 := order(a, same)
	p1, p2 := order(a, apart)
	o1, o2 := order(a, other)
	e1, e2 := order(a, expOnly)
	b1, b2 := order(a, bad)
	q1, q2 := order(slotA, slotOther)
	r1, r2 := order(slotA, slotSame)
	cases := []struct {
		name string
		raw  []byte
	}{
		{"valid: sample 301 has code 1 in one batch, 2 in the other", enc(1, lo, hi, run)},
		{"valid: same code, another exponent", enc(1, e1, e2, run)},
		{"batches in the wrong order", enc(1, hi, lo, run)},
		{"the same batch twice", enc(1, a, a, run)},
		{"agreeing values", enc(1, s1, s2, run)},
		{"valid: same code, another pool slot", enc(1, q1, q2, run)},
		{"agreeing values and pool slots", enc(1, r1, r2, run)},
		{"no common sample", enc(1, p1, p2, run)},
		{"two machines", enc(1, o1, o2, run)},
		{"a batch with a bad signature", enc(1, b1, b2, run)},
		{"kind 2 holding two batches (not an accusation)", enc(2, lo, hi, run)},
		{"another run", enc(1, lo, hi, "other")},
		{"trailing byte", append(enc(1, lo, hi, run), 0)},
	}
	// Accusations (kind 2, PROTOCOL-WIRE.md §6.1): keyA accuses keyP's
	// version 2 batch.
	accused := rawBatch(keyP, 2, run, uv(300), uv(3), 127, extBlock([]byte{1, 0xff, 2}, []byte{1, byte(len(basis))}, basis))
	accuse := func(k ed25519.PrivateKey, sample uint64, batch []byte) []byte {
		tag := p2p.NewRunTag(run)
		e := append([]byte{1}, tag[:]...)
		e = append(e, 2)
		e = append(e, pubOf(k)...)
		e = append(e, uv(sample)...)
		e = append(append(e, uv(uint64(len(batch)))...), batch...)
		return append(e, ed25519.Sign(k, append([]byte("zopeer/accusation/1"), e...))...)
	}
	badAcc := accuse(keyA, 301, accused)
	badAcc[len(badAcc)-1] ^= 1
	cases = append(cases, []struct {
		name string
		raw  []byte
	}{
		{"accusation: valid (sample 301 of a v2 batch with a basis)", accuse(keyA, 301, accused)},
		{"accusation: the batch states no basis (version 1)", accuse(keyA, 300, a)},
		{"accusation: sample outside the batch", accuse(keyA, 303, accused)},
		{"accusation: the batch's own signer accuses", accuse(keyP, 301, accused)},
		{"accusation: bad accuser signature", badAcc},
		{"accusation: trailing byte", append(accuse(keyA, 301, accused), 0)},
	}...)
	var out []obj
	for _, c := range cases {
		o := obj{"name": c.name, "hex": hx(c.raw), "run": run}
		ev, err := p2p.DecodeEvidence(c.raw, p2p.NewRunTag(run))
		o["valid"] = err == nil
		if err == nil {
			o["machine"], o["sample"] = u64(ev.Machine), u64(ev.Sample)
			if ev.IsAccusation() {
				o["accuser"] = u64(ev.Accuser)
			}
		}
		out = append(out, o)
	}
	return out, nil
}

// excessVectors are zo.Excess (PROTOCOL.md §11.3) on a few claims.
func excessVectors() []obj {
	cases := []struct {
		exp      uint8
		code     int8
		g, bound float64
	}{
		{121, 64, 0.5, 1},   // an exact claim
		{121, 64, 0.504, 1}, // within one step
		{121, -64, 0.5, 1},  // sign flipped
		{122, 127, 3, 1},    // clipped at the bound
		{127, 1, -0.25, 0},  // no bound
		{121, 0, 1e-9, 1},
	}
	var out []obj
	for _, c := range cases {
		out = append(out, obj{"exp": c.exp, "code": c.code, "g": f64(c.g), "bound": f64(c.bound), "excess": f64(zo.Excess(c.exp, c.code, c.g, c.bound))})
	}
	return out
}

func stateVectors() []obj {
	key, _ := cryptoKey(keyP)
	var d zo.SetDigest
	d.Add(zo.Update{Machine: 1, Sample: 2, Exp: 3, Code: 4})
	st := p2p.State{Time: 1700000000000, Count: 1, Digest: d, WeightsHash: sha256.Sum256([]byte("weights"))}
	good, _ := p2p.EncodeState(key, p2p.NewRunTag(run), st)
	flipped := slices.Clone(good)
	flipped[50] ^= 1
	var out []obj
	for _, c := range []struct {
		name string
		raw  []byte
	}{
		{"valid", good}, {"flipped bit in the digest", flipped}, {"trailing byte", append(slices.Clone(good), 0)},
		{"one byte short", good[:len(good)-1]},
	} {
		o := obj{"name": c.name, "hex": hx(c.raw), "run": run}
		s, err := p2p.DecodeState(c.raw, p2p.NewRunTag(run))
		if err != nil {
			o["valid"], o["reason"] = false, p2p.ReasonOf(err)
		} else {
			o["valid"] = true
			o["machine"], o["time"], o["count"], o["set_digest"], o["weights_hash"] = u64(s.Machine), u64(s.Time), u64(s.Count), s.Digest.String(), hx(s.WeightsHash[:])
		}
		out = append(out, o)
	}
	return out
}

func syncVectors() obj {
	tag := p2p.NewRunTag(run)
	otherTag := p2p.NewRunTag("other")
	var reqs []obj
	for _, q := range []p2p.SyncRequest{
		{Kind: p2p.KindDigest}, {Kind: p2p.KindManifest},
		{Kind: p2p.KindFetch, Machine: p2p.MachineOf(pubOf(keyP)), Lo: 300, Hi: 4395},
		{Kind: p2p.KindEvidence, Machine: 42},
	} {
		body := p2p.EncodeSyncRequest(tag, q)
		reqs = append(reqs, obj{"kind": q.Kind, "machine": u64(q.Machine), "lo": u64(q.Lo), "hi": u64(q.Hi),
			"body": hx(body), "frame": hx(p2p.AppendFrame(nil, body)), "valid": true})
	}
	fetch := p2p.EncodeSyncRequest(tag, p2p.SyncRequest{Kind: p2p.KindFetch, Machine: 1, Lo: 5, Hi: 5})
	for _, bad := range [][]byte{
		append(p2p.EncodeSyncRequest(tag, p2p.SyncRequest{Kind: p2p.KindDigest}), 0),
		append(append([]byte{1}, tag[:]...), 7),
		append(append([]byte{2}, tag[:]...), 1),
		append(append([]byte{1}, otherTag[:]...), 1),
		append(append(append([]byte{1}, tag[:]...), 2), 0, 0, 0, 0, 0, 0, 0, 1, 6, 5), // lo > hi
		append(append(append([]byte{1}, tag[:]...), 2), 0, 0, 0, 0, 0, 0, 0, 1, 0x85, 0x00, 5),
		fetch[:len(fetch)-1],
		append(append([]byte{1}, tag[:]...), 4, 0, 0, 0),
		append(append([]byte{1}, tag[:]...), 6, 0, 0, 0),                     // snapshot data: short hash
		append(append(append([]byte{1}, tag[:]...), 6), make([]byte, 32)...), // no offset
	} {
		reqs = append(reqs, obj{"body": hx(bad), "valid": false})
	}
	for _, q := range []p2p.SyncRequest{{Kind: p2p.KindSnapInfo}, {Kind: p2p.KindSnapData, Hash: sha256.Sum256([]byte("w")), Offset: 3 << 20}} {
		body := p2p.EncodeSyncRequest(tag, q)
		reqs = append(reqs, obj{"kind": q.Kind, "hash": hx(q.Hash[:]), "offset": u64(q.Offset),
			"body": hx(body), "frame": hx(p2p.AppendFrame(nil, body)), "valid": true})
	}
	hs := []p2p.Holding{
		{Machine: 3, Digest: 0x0102030405060708, Samples: p2p.Ranges{{Lo: 0, Hi: 99}}},
		{Machine: p2p.MachineOf(pubOf(keyP)), Digest: 42, Samples: p2p.Ranges{{Lo: 5, Hi: 5}, {Lo: 7, Hi: 10}, {Lo: 1000, Hi: 1000}}},
	}
	var dig []obj
	enc := func(hs []p2p.Holding, ex []uint64) {
		body := p2p.EncodeDigestResponse(hs, ex)
		var ho []obj
		for _, h := range hs {
			var rs [][2]string
			for _, r := range h.Samples {
				rs = append(rs, [2]string{u64(r.Lo), u64(r.Hi)})
			}
			ho = append(ho, obj{"machine": u64(h.Machine), "machine_digest": u64(h.Digest), "ranges": rs})
		}
		var es []string
		for _, e := range ex {
			es = append(es, u64(e))
		}
		dig = append(dig, obj{"body": hx(body), "valid": true, "holdings": ho, "excluded": es})
	}
	enc(hs, []uint64{4, 9})
	enc(nil, nil)
	enc([]p2p.Holding{{Machine: ^uint64(0), Digest: ^uint64(0), Samples: p2p.Ranges{{Lo: 1 << 40, Hi: ^uint64(0)}}}}, nil)
	mach := func(m uint64, d uint64) []byte {
		return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, m), d)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, bad := range [][]byte{
		cat([]byte{2}, mach(5, 0), []byte{1, 0, 0}, mach(4, 0), []byte{1, 0, 0}, []byte{0}),                     // machines out of order
		cat([]byte{1}, mach(5, 0), []byte{2, 0, 3, 1, 0}, []byte{0}),                                            // gap 1 (adjacent ranges)
		cat([]byte{1}, mach(5, 0), []byte{0}, []byte{0}),                                                        // no ranges
		cat([]byte{0}, []byte{2}, binary.BigEndian.AppendUint64(nil, 9), binary.BigEndian.AppendUint64(nil, 4)), // exclusions out of order
		cat([]byte{0}, []byte{0}, []byte{0}),                                                                    // trailing byte
		cat([]byte{1}, mach(5, 0), []byte{1}, uv(^uint64(0)), []byte{1}, []byte{0}),                             // range overflows 2^64
	} {
		_, _, err := p2p.DecodeDigestResponse(bad)
		dig = append(dig, obj{"body": hx(bad), "valid": err == nil})
	}
	snaps, err := snapshotInfoVectors(hs)
	if err != nil {
		panic(err)
	}
	b1 := rawBatch(keyP, 1, run, uv(300), uv(2), 127, []byte{1, 1})
	fetchResp := p2p.AppendFrame(p2p.AppendFrame(nil, b1), nil)
	return obj{"requests": reqs, "digest_responses": dig, "snapshot_infos": snaps,
		"fetch_response": obj{"request": hx(p2p.AppendFrame(nil, p2p.EncodeSyncRequest(tag, p2p.SyncRequest{Kind: p2p.KindFetch, Machine: p2p.MachineOf(pubOf(keyP)), Lo: 300, Hi: 301}))),
			"response": hx(fetchResp), "batches": []string{hx(b1)}}}
}

func tagHex(r string) string {
	t := p2p.NewRunTag(r)
	return hx(t[:])
}
