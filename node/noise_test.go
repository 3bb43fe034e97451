package node

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/zopeer/zopeer/zo"
)

// noiseSamples is how many projected gradients the BLAS comparison measures.
const noiseSamples = 32

// embeddedGradients prints, one per line, the projected gradients of
// machine 1's first noiseSamples samples on the embedded default model and
// task, for TestVerificationToleranceVsNoise's child processes.
func embeddedGradients(t *testing.T) []float64 {
	t.Helper()
	s := Defaults
	s.Home = t.TempDir()
	s, err := s.WithEmbeddedDefault()
	if err != nil {
		t.Fatal(err)
	}
	s.BatchSize = 4
	run, err := openRun(context.Background(), s, nil, slog.New(slog.DiscardHandler), true)
	if err != nil {
		t.Fatal(err)
	}
	defer run.Close()
	g, _, err := run.Trainer.gradients(context.Background(), 1, 0, noiseSamples, nil)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestEmbeddedGradientsHelper is the child of
// TestVerificationToleranceVsNoise: it prints the gradients under the BLAS
// set-up of its environment.
func TestEmbeddedGradientsHelper(t *testing.T) {
	if os.Getenv("ZOPEER_NOISE_CHILD") != "1" {
		t.Skip("child process of TestVerificationToleranceVsNoise")
	}
	for _, g := range embeddedGradients(t) {
		fmt.Printf("G %x\n", math.Float64bits(g))
	}
}

// TestVerificationToleranceVsNoise re-computes the same projected gradients
// of the embedded default under OpenBLAS with 1 and 2 threads and under
// pure-Go gonum (child processes), and checks that the largest difference is
// far below the tolerance `zopeer init --public-data` gives the embedded
// default (τ = G/8 = 0.125 at G = 1): below τ/10. The honest claims' excess
// is then at most that difference, while their sign flips are confirmed.
func TestVerificationToleranceVsNoise(t *testing.T) {
	const bound, tol = 1.0, 1.0 / 8
	runs := map[string][]float64{}
	for _, env := range []string{"OPENBLAS_NUM_THREADS=1", "OPENBLAS_NUM_THREADS=2", "ZOPEER_BLAS=go"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestEmbeddedGradientsHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), "ZOPEER_NOISE_CHILD=1", env)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", env, err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if h, ok := strings.CutPrefix(line, "G "); ok {
				b, err := strconv.ParseUint(h, 16, 64)
				if err != nil {
					t.Fatal(err)
				}
				runs[env] = append(runs[env], math.Float64frombits(b))
			}
		}
		if len(runs[env]) != noiseSamples {
			t.Fatalf("%s: %d gradients\n%s", env, len(runs[env]), out)
		}
	}
	ref := runs["OPENBLAS_NUM_THREADS=1"]
	u := make([]float64, len(ref))
	for i := range u {
		u[i] = zo.DeriveSeed(Defaults.Run, 1, uint64(i)).CodeUniform()
	}
	codes := make([]int8, len(ref))
	exp, err := zo.QuantizeBounded(ref, u, codes, bound)
	if err != nil {
		t.Fatal(err)
	}
	flips := 0
	for env, g := range runs {
		var worst, worstExcess float64
		for i := range g {
			worst = max(worst, math.Abs(g[i]-ref[i]))
			worstExcess = max(worstExcess, zo.Excess(exp, codes[i], g[i], bound))
			if zo.Excess(exp, -codes[i], g[i], bound) > accuseFactor*tol {
				flips++
			}
		}
		t.Logf("%s vs OPENBLAS_NUM_THREADS=1: max |Δg| %.3g over %d gradients; honest claims' max excess %.3g; τ = %g", env, worst, len(g), worstExcess, tol)
		if worst > tol/10 {
			t.Errorf("%s: gradients differ by %.3g, not far below τ = %g", env, worst, tol)
		}
		if worstExcess > worst {
			t.Errorf("%s: an honest claim's excess %.3g exceeds the numerical difference %.3g", env, worstExcess, worst)
		}
	}
	t.Logf("sign-flipped claims that would be accused (excess > 2τ): %d of %d", flips, len(runs)*len(ref))
	if flips < len(runs)*len(ref)*3/4 {
		t.Errorf("only %d of %d sign-flipped claims would be accused", flips, len(runs)*len(ref))
	}
}
