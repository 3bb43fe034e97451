package store

import "fmt"

// ModelSource records where a run's base model came from, as its creator
// gave it. Peers do not agree on it (BaseDigest is what they check), so it
// is free-form: a joiner reads it to know which model to fetch.
type ModelSource struct {
	Embedded bool   `json:"embedded,omitempty"` // the model built into zopeer
	Name     string `json:"name,omitempty"`     // e.g. a Hugging Face repository id
	Revision string `json:"revision,omitempty"` // e.g. a commit or tag of Name
	Path     string `json:"path,omitempty"`     // the directory given to `zopeer init --model`
	// SHA256 is of the *.safetensors files, in name order: a joiner can
	// check a download before loading it.
	SHA256 string `json:"safetensors_sha256,omitempty"`
}

// String names the model for a person: name@revision, else the path.
func (s *ModelSource) String() string {
	switch {
	case s == nil:
		return "an unrecorded model"
	case s.Embedded:
		return "the embedded default model"
	case s.Name != "" && s.Revision != "":
		return fmt.Sprintf("%s@%s", s.Name, s.Revision)
	case s.Name != "":
		return s.Name
	default:
		return s.Path
	}
}
