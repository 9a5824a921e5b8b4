package e2e

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/internal/bench"
)

// The benchmark's switches, read and removed from the environment before any test runs:
// `berth serve` refuses BERTH_* variables it does not know, and the servers inherit the
// environment.
var benchCopy, benchCopyMiB, benchCopyArgs = takeEnv("BERTH_BENCH_COPY"), takeEnv("BERTH_BENCH_COPY_MIB"), takeEnv("BERTH_BENCH_COPY_ARGS")

func takeEnv(name string) string {
	v := os.Getenv(name)
	os.Unsetenv(name)
	return v
}

// TestCLICopyBenchmark times `berth copy` of a 1 GiB image between two berth registries
// against `crane copy` and `skopeo copy` in the same run (see bench.CopyWorkload), and
// fails if berth is slower than either by more than 5%. It moves several GiB, so it runs
// only with BERTH_BENCH_COPY=1 (and not with -short). BERTH_BENCH_COPY_MIB changes the
// image size; BERTH_BENCH_COPY_ARGS adds flags to berth copy.
func TestCLICopyBenchmark(t *testing.T) {
	if benchCopy != "1" || testing.Short() {
		t.Skip("set BERTH_BENCH_COPY=1 to run the copy benchmark")
	}
	env := bench.CopyEnv{
		Berth:   berthBinary(t),
		Crane:   peer(t, "crane"),
		Skopeo:  lookPath(t, "skopeo"),
		Source:  startBerth(t).Addr,
		Dest:    startBerth(t).Addr,
		WorkDir: t.TempDir(),
		Log:     tlog{t},
		// Extra flags of berth copy, to try settings.
		BerthArgs: strings.Fields(benchCopyArgs),
	}
	if mib := benchCopyMiB; mib != "" {
		n, err := strconv.Atoi(mib)
		if err != nil || n <= 0 {
			t.Fatalf("BERTH_BENCH_COPY_MIB=%q: want a positive number", mib)
		}
		env.Size = int64(n) << 20
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	res, err := bench.CopyWorkload(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", res)
	berth, _ := res.Tool("berth")
	for _, other := range []string{"crane", "skopeo"} {
		o, _ := res.Tool(other)
		if float64(berth.Median) > 1.05*float64(o.Median) {
			t.Errorf("berth copy (median %v) is slower than %s copy (median %v)", berth.Median, other, o.Median)
		}
	}
}

// tlog writes lines to the test log.
type tlog struct{ t testing.TB }

func (l tlog) Write(p []byte) (int, error) {
	l.t.Log(string(p))
	return len(p), nil
}
