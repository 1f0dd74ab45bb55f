package pipelines

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/log"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/dataflow"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/universal"

	"longctx/storage/gcstest"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestPrepareUniversalRunner submits the pipeline with
// --runner=universal --endpoint=localhost:PORT --environment_type=LOOPBACK
// to a prism job server running as a separate process — the path Flink and
// Spark job servers take — and checks its outputs equal a direct run's.
func TestPrepareUniversalRunner(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "prism")
	build := exec.Command("go", "build", "-o", bin, "github.com/apache/beam/sdks/v2/go/cmd/prism")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build prism job server: %v\n%s", err, out)
	}
	port := freePort(t)
	var logs bytes.Buffer
	var mu sync.Mutex
	srv := exec.Command(bin, fmt.Sprint("--job_port=", port), fmt.Sprint("--web_port=", freePort(t)), "--log_level=warn")
	srv.Stdout, srv.Stderr = lockedWriter{&mu, &logs}, lockedWriter{&mu, &logs}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprint("127.0.0.1:", port))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			mu.Lock()
			t.Fatalf("prism job server did not listen on %d: %v\n%s", port, err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	root := t.TempDir()
	cfg, _ := demoConfig(t, root)
	direct := cfg
	direct.Output = filepath.Join(root, "direct")
	runPrepare(t, direct, "direct")

	setFlags(t, map[string]string{"endpoint": fmt.Sprint("localhost:", port), "environment_type": "LOOPBACK"})
	cfg.Output = filepath.Join(root, "universal")
	runPrepare(t, cfg, "universal")
	sameFiles(t, "universal (prism job server) vs direct", dirFiles(t, direct.Output), dirFiles(t, cfg.Output))
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// captureLog records Beam's log output (where the dataflow dry run prints
// the job).
type captureLog struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (c *captureLog) Log(_ context.Context, _ log.Severity, _ int, msg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.WriteString(msg + "\n")
}

// TestPrepareDataflowDryRun translates the pipeline into a Dataflow job
// with --dry_run (nothing is submitted) and checks the job carries the
// project, region, staging location and our transforms; without --project
// the runner refuses.
func TestPrepareDataflowDryRun(t *testing.T) {
	gcstest.Start(t, "staging") // the runner checks the staging bucket's policy
	root := t.TempDir()
	cfg, _ := demoConfig(t, root)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	plan, err := PlanPrepare(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	cl := &captureLog{}
	log.SetLogger(cl)
	t.Cleanup(func() { log.SetLogger(&log.Standard{}) })
	// Dataflow runs Docker environments; the prism runner of an earlier test
	// in this process may have switched the global flag to loopback.
	setFlags(t, map[string]string{"dry_run": "true", "region": "europe-west4", "environment_type": "docker",
		"staging_location": "gs://staging/longctx", "worker_binary": exe})
	if _, err := runWith(plan, "dataflow"); err == nil || !strings.Contains(err.Error(), "project") {
		t.Fatalf("without --project: err = %v, want a missing-project error", err)
	}
	setFlags(t, map[string]string{"project": "longctx-test"})
	plan, _ = PlanPrepare(context.Background(), cfg)
	if _, err := runWith(plan, "dataflow"); err != nil {
		t.Fatalf("dry run: %v", err)
	}
	cl.mu.Lock()
	job := cl.buf.String()
	cl.mu.Unlock()
	for _, want := range []string{"Dry-run", "longctx-test", "europe-west4", "gs://staging/longctx", "prepareFileFn", "writeManifestFn"} {
		if !strings.Contains(job, want) {
			t.Errorf("dry-run job lacks %q", want)
		}
	}
	if _, err := os.Stat(filepath.Join(cfg.Output, "manifest.json")); err == nil {
		t.Errorf("dry run wrote outputs")
	}
}

// TestMixDataflowDryRun translates the mix pipeline (plan as Beam
// transforms, select, pack) into a Dataflow job: a batch job (an unbounded
// PCollection would make it a streaming job that never ends) whose graph
// names the plan's DoFns and holds the file list's path, not the files.
func TestMixDataflowDryRun(t *testing.T) {
	gcstest.Start(t, "staging")
	ctx := context.Background()
	tmp := t.TempDir()
	prep := writeFixture(t, tmp, demoSources)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cl := &captureLog{}
	log.SetLogger(cl)
	t.Cleanup(func() { log.SetLogger(&log.Standard{}) })
	setFlags(t, map[string]string{"dry_run": "true", "region": "europe-west4", "environment_type": "docker",
		"staging_location": "gs://staging/longctx", "worker_binary": exe, "project": "longctx-test"})
	_, err = Mix(ctx, MixOptions{Spec: demoSpec(), Prepare: prep, Output: "gs://staging/mix", Runner: "dataflow", Quiet: true})
	if !errors.Is(err, ErrDryRun) {
		t.Fatalf("dry run: err = %v, want ErrDryRun", err)
	}
	cl.mu.Lock()
	job := cl.buf.String()
	cl.mu.Unlock()
	for _, want := range []string{"Dry-run", "JOB_TYPE_BATCH", "mixScanFn", "mixDedupFn", "mixHistFn", "mixCrossingFn", "mixRankFn",
		"mixBoundaryFn", "mixPlanFn", "mixSelectFn", "mixPackFn"} {
		if !strings.Contains(job, want) {
			t.Errorf("dry-run job lacks %q", want)
		}
	}
	if strings.Contains(job, "JOB_TYPE_STREAMING") {
		t.Error("the mix is a streaming job on Dataflow")
	}
	if strings.Contains(job, "math-000.tokcache") {
		t.Error("the job graph lists cache files")
	}
}
