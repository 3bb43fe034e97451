package model

import (
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	for _, c := range []struct {
		json string
		want string // error substring; empty: must parse
	}{
		{`{"model_type":"llama","vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2,"max_position_embeddings":8}`, ""},
		{`{"model_type":"llama","vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":3,"num_key_value_heads":2,"max_position_embeddings":8}`, "key/value heads"},
		{`{"model_type":"llama","vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2,"max_position_embeddings":8,"hidden_act":"gelu"}`, "hidden_act"},
		{`{"model_type":"gpt2","vocab_size":10,"n_embd":8,"n_layer":1,"n_head":2,"n_positions":8,"activation_function":"relu"}`, "activation_function"},
		{`{"model_type":"gpt2","vocab_size":10,"n_embd":8,"n_layer":0,"n_head":2,"n_positions":8}`, "non-positive"},
		{`{"model_type":"qwen2","vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2,"max_position_embeddings":8,"use_sliding_window":true}`, "sliding-window"},
		{`{"model_type":"llama","vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2,"max_position_embeddings":8,"rope_scaling":{"type":"linear","factor":2}}`, "rope_scaling"},
		{`{"model_type":"llama","vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2,"max_position_embeddings":8,"rope_scaling":{"rope_type":"llama3","factor":8}}`, "rope_scaling"},
		{`[]`, "bad config.json"},
	} {
		_, err := ParseConfig([]byte(c.json))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.json, err)
		case c.want != "" && (err == nil || !strings.HasPrefix(err.Error(), "model: ") || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: err = %v, want %q", c.json, err, c.want)
		}
	}
}
