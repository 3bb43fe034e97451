package model

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// Arch is a model family.
type Arch string

// Supported families.
const (
	GPT2  Arch = "gpt2"  // learned positions, LayerNorm, GELU (tanh), Conv1D weights [in, out]
	Llama Arch = "llama" // RMSNorm, RoPE, SwiGLU, grouped-query attention; also SmolLM, Qwen2
)

// Config is the part of a Hugging Face config.json the forward pass needs,
// normalised across families.
type Config struct {
	Arch       Arch
	ModelType  string // config.json's model_type, e.g. "qwen2"
	Vocab      int
	Hidden     int
	Layers     int
	Heads      int
	KVHeads    int
	HeadDim    int
	FF         int // MLP inner size
	MaxPos     int
	NormEps    float64
	RopeTheta  float64
	TiedHead   bool
	QKVBias    bool // biases on the q, k, v projections
	OBias      bool // bias on the attention output projection
	MLPBias    bool
	TorchDType string // dtype the checkpoint declares
	Llama3Rope *Llama3Rope

	raw map[string]any // the whole config.json, written back on export
}

type hfConfig struct {
	ModelType     string   `json:"model_type"`
	Architectures []string `json:"architectures"`
	TorchDType    string   `json:"torch_dtype"`
	Tie           *bool    `json:"tie_word_embeddings"`
	VocabSize     int      `json:"vocab_size"`

	// GPT-2
	NEmbd      int      `json:"n_embd"`
	NLayer     int      `json:"n_layer"`
	NHead      int      `json:"n_head"`
	NInner     *int     `json:"n_inner"`
	NPositions int      `json:"n_positions"`
	LNEps      *float64 `json:"layer_norm_epsilon"`
	Activation string   `json:"activation_function"`

	// Llama family
	HiddenSize   int             `json:"hidden_size"`
	Intermediate int             `json:"intermediate_size"`
	NumLayers    int             `json:"num_hidden_layers"`
	NumHeads     int             `json:"num_attention_heads"`
	NumKVHeads   int             `json:"num_key_value_heads"`
	HeadDim      int             `json:"head_dim"`
	MaxPosEmb    int             `json:"max_position_embeddings"`
	RMSEps       *float64        `json:"rms_norm_eps"`
	RopeTheta    *float64        `json:"rope_theta"`
	RopeScaling  json.RawMessage `json:"rope_scaling"`
	HiddenAct    string          `json:"hidden_act"`
	AttnBias     bool            `json:"attention_bias"`
	MLPBias      bool            `json:"mlp_bias"`
	SlidingWin   *bool           `json:"use_sliding_window"`
}

// Llama3Rope is Llama 3's rope_scaling: long wavelengths slowed by Factor,
// short ones kept, a smooth blend between.
type Llama3Rope struct {
	Factor         float64 `json:"factor"`
	LowFreqFactor  float64 `json:"low_freq_factor"`
	HighFreqFactor float64 `json:"high_freq_factor"`
	OriginalMaxPos float64 `json:"original_max_position_embeddings"`
}

// ReadConfig reads dir/config.json.
func ReadConfig(dir string) (*Config, error) {
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	return ParseConfig(b)
}

// ParseConfig parses a Hugging Face config.json.
func ParseConfig(b []byte) (*Config, error) {
	var h hfConfig
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("model: bad config.json: %w", err)
	}
	c := &Config{ModelType: h.ModelType, Vocab: h.VocabSize, TorchDType: h.TorchDType}
	if err := json.Unmarshal(b, &c.raw); err != nil {
		return nil, fmt.Errorf("model: bad config.json: %w", err)
	}
	switch {
	case h.ModelType == "gpt2" || slices.Contains(h.Architectures, "GPT2LMHeadModel"):
		c.Arch = GPT2
		c.Hidden, c.Layers, c.Heads, c.MaxPos = h.NEmbd, h.NLayer, h.NHead, h.NPositions
		c.KVHeads = c.Heads
		c.FF = 4 * c.Hidden
		if h.NInner != nil {
			c.FF = *h.NInner
		}
		c.NormEps = 1e-5
		if h.LNEps != nil {
			c.NormEps = *h.LNEps
		}
		c.TiedHead = h.Tie == nil || *h.Tie
		c.QKVBias, c.OBias, c.MLPBias = true, true, true
		if a := h.Activation; a != "" && a != "gelu_new" && a != "gelu_pytorch_tanh" {
			return nil, fmt.Errorf("model: gpt2 activation_function %q not supported (want gelu_new)", a)
		}
		if !c.TiedHead {
			return nil, fmt.Errorf("model: gpt2 with an untied head is not supported")
		}
	case h.ModelType == "llama" || h.ModelType == "qwen2":
		c.Arch = Llama
		c.Hidden, c.Layers, c.Heads, c.KVHeads = h.HiddenSize, h.NumLayers, h.NumHeads, h.NumKVHeads
		if c.KVHeads == 0 {
			c.KVHeads = c.Heads
		}
		c.FF, c.MaxPos, c.HeadDim = h.Intermediate, h.MaxPosEmb, h.HeadDim
		c.NormEps, c.RopeTheta = 1e-6, 10000
		if h.RMSEps != nil {
			c.NormEps = *h.RMSEps
		}
		if h.RopeTheta != nil {
			c.RopeTheta = *h.RopeTheta
		}
		c.TiedHead = h.Tie != nil && *h.Tie
		if h.ModelType == "qwen2" {
			c.QKVBias = true
			if h.SlidingWin != nil && *h.SlidingWin {
				return nil, fmt.Errorf("model: qwen2 sliding-window attention is not supported")
			}
		} else {
			c.QKVBias, c.OBias, c.MLPBias = h.AttnBias, h.AttnBias, h.MLPBias
		}
		if a := h.HiddenAct; a != "" && a != "silu" {
			return nil, fmt.Errorf("model: %s hidden_act %q not supported (want silu)", h.ModelType, a)
		}
		if len(h.RopeScaling) > 0 && string(h.RopeScaling) != "null" {
			var rs struct {
				Type  string `json:"type"`
				RType string `json:"rope_type"`
				Llama3Rope
			}
			_ = json.Unmarshal(h.RopeScaling, &rs) // an unreadable value is refused below
			switch t := rs.Type + rs.RType; {
			case t == "default":
			case t == "llama3" && rs.Factor > 0 && rs.HighFreqFactor > rs.LowFreqFactor && rs.LowFreqFactor > 0 && rs.OriginalMaxPos > 0:
				c.Llama3Rope = &rs.Llama3Rope
			default:
				return nil, fmt.Errorf("model: rope_scaling %s not supported (default and llama3 are)", h.RopeScaling)
			}
		}
	default:
		return nil, fmt.Errorf("model: unknown architecture: model_type %q, architectures %v (supported: gpt2, llama, qwen2)", h.ModelType, h.Architectures)
	}
	if c.HeadDim == 0 && c.Heads > 0 {
		c.HeadDim = c.Hidden / c.Heads
	}
	switch {
	case c.Vocab <= 0 || c.Hidden <= 0 || c.Layers <= 0 || c.Heads <= 0 || c.FF <= 0 || c.MaxPos <= 0:
		return nil, fmt.Errorf("model: config has non-positive sizes: vocab %d, hidden %d, layers %d, heads %d, mlp %d, positions %d",
			c.Vocab, c.Hidden, c.Layers, c.Heads, c.FF, c.MaxPos)
	case c.KVHeads <= 0 || c.Heads%c.KVHeads != 0:
		return nil, fmt.Errorf("model: %d attention heads do not divide into %d key/value heads", c.Heads, c.KVHeads)
	case c.Arch == GPT2 && c.Hidden%c.Heads != 0:
		return nil, fmt.Errorf("model: hidden size %d not divisible by %d heads", c.Hidden, c.Heads)
	case c.Arch == Llama && c.HeadDim%2 != 0:
		return nil, fmt.Errorf("model: head_dim %d must be even for rotary embeddings", c.HeadDim)
	}
	return c, nil
}
