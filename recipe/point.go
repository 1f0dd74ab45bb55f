// Package recipe chains the stages of the context-extension recipe for one
// experiment point — mix a mixture from prepared token caches, continue
// pretraining on it, evaluate the result — and runs sweeps of such points
// (mixture ablations) with lineage and resumability. The demo and `longctx
// sweep` are thin layers over it.
package recipe

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"longctx/config"
	"longctx/eval"
	"longctx/mixture"
	"longctx/pipelines"
	"longctx/shards"
	"longctx/storage"
	"longctx/tokenizer"
	"longctx/trainer"
)

// Env is what every point of a run shares.
type Env struct {
	Prepare     string // prepare manifest the mixtures draw from
	Tokenizer   string // tokenizer.json used by the evals
	Backend     string // GoMLX backend spec ("" = default)
	GroupTokens int64  // mix: tokens per packing group (0 = default)
	ChunkTokens int    // mix: tokens per shard chunk (0 = default)
	Workers     int    // mix: in-process workers (0 = all CPUs)
	Log         io.Writer
}

// Point is one experiment: a mixture, a training run on it, and evals.
type Point struct {
	Name    string              `yaml:"name" json:"name"`
	Mixture mixture.Spec        `yaml:"mixture" json:"mixture"`
	Train   trainer.TrainConfig `yaml:"train" json:"train"`
	Eval    eval.SuiteConfig    `yaml:"eval" json:"eval"`
}

// Lineage names the hashes of everything a point's results came from.
type Lineage struct {
	ConfigHash     string            `json:"config_hash"`     // settings + prepare manifest + start checkpoint + model config
	InitHash       string            `json:"init_hash"`       // start checkpoint (train.init), if any
	PrepareHash    string            `json:"prepare_hash"`    // prepare manifest
	MixtureHash    string            `json:"mixture_hash"`    // mixture spec (as recorded in the shard manifest)
	ShardsHash     string            `json:"shards_hash"`     // shard manifest file
	CheckpointHash string            `json:"checkpoint_hash"` // final HF export
	EvalHashes     map[string]string `json:"eval_hashes"`     // report file hashes by eval
}

// SourceResult is one source's line of the realized mixture.
type SourceResult struct {
	Source   string  `json:"source"`
	Weight   float64 `json:"weight"`
	Target   int64   `json:"target_tokens"`
	Realized int64   `json:"realized_tokens"`
	Repeats  float64 `json:"repeats"`
}

// PointResult is what a finished point records in DIR/point.json.
type PointResult struct {
	Name      string                 `json:"name"`
	Weights   map[string]float64     `json:"weights"`
	RopeTheta float64                `json:"rope_theta"`
	SeqLen    int                    `json:"seq_len"`
	Sources   []SourceResult         `json:"sources"`
	Fill      float64                `json:"fill"`
	Sequences int64                  `json:"sequences"`
	Train     trainer.Result         `json:"train"`
	Metrics   map[string]eval.Metric `json:"metrics"`
	// Items are the per-item scores behind the metrics, so two points
	// evaluated on the same items can be compared pair by pair.
	Items   map[string]eval.Items `json:"items,omitempty"`
	Lineage Lineage               `json:"lineage"`
	Dir     string                `json:"dir"`
	Skipped bool                  `json:"-"` // found finished, not rerun
}

// PointFile is the marker a finished point leaves; its presence with the same
// config hash makes a rerun skip the point.
const PointFile = "point.json"

// RunPoint mixes, trains and evaluates p under dir (dir/shards, dir/train,
// dir/eval, dir/point.json). A point already finished with the same settings
// and prepare manifest is returned from its point.json; an interrupted one
// resumes training from its last checkpoint.
func RunPoint(ctx context.Context, env Env, p Point, dir string) (PointResult, error) {
	logf := func(format string, a ...any) {
		if env.Log != nil {
			fmt.Fprintf(env.Log, "[%s] "+format+"\n", append([]any{p.Name}, a...)...)
		}
	}
	prep, err := shards.ReadPrepareManifest(ctx, env.Prepare)
	if err != nil {
		return PointResult{}, err
	}
	// The point's identity covers the contents behind its paths too: a
	// retrained start checkpoint or an edited model config reruns it.
	var initHash, modelHash string
	if p.Train.Init != "" {
		if initHash, err = eval.HashDir(p.Train.Init); err != nil {
			return PointResult{}, fmt.Errorf("point %s: init checkpoint: %w", p.Name, err)
		}
	}
	if p.Train.ModelConfig != "" {
		if modelHash, err = fileHash(p.Train.ModelConfig); err != nil {
			return PointResult{}, fmt.Errorf("point %s: model config: %w", p.Name, err)
		}
	}
	prepHash, err := prep.Hash()
	if err != nil {
		return PointResult{}, fmt.Errorf("point %s: %w", p.Name, err)
	}
	hash, err := config.Hash(struct {
		P                    Point
		Prepare, Init, Model string
	}{p, prepHash, initHash, modelHash})
	if err != nil {
		return PointResult{}, fmt.Errorf("point %s: %w", p.Name, err)
	}
	if prev, err := ReadPoint(dir); err == nil && prev.Lineage.ConfigHash == hash {
		logf("finished earlier (%s), skipped", filepath.Join(dir, PointFile))
		prev.Skipped = true
		return prev, nil
	}

	// Mix.
	shardDir := filepath.Join(dir, "shards")
	logf("mix %s: %d tokens at seq_len %d", p.Mixture.Name, p.Mixture.TotalTokens, p.Mixture.SeqLen)
	mix, err := pipelines.Mix(ctx, pipelines.MixOptions{
		Spec: p.Mixture, Prepare: env.Prepare, Output: shardDir, GroupTokens: env.GroupTokens,
		ChunkTokens: env.ChunkTokens, Workers: env.Workers, Quiet: env.Log == nil,
	})
	if err != nil {
		return PointResult{}, fmt.Errorf("point %s: mix: %w", p.Name, err)
	}
	res := PointResult{Name: p.Name, Weights: map[string]float64{}, SeqLen: p.Mixture.SeqLen, Dir: dir}
	for _, s := range mix.Manifest.Sources {
		res.Weights[s.Source] = s.Weight
		res.Sources = append(res.Sources, SourceResult{s.Source, s.Weight, s.TargetTokens, s.RealizedTokens, s.Repeats})
	}
	res.Fill, res.Sequences = mix.Manifest.Packing.Fill(), mix.Manifest.Packing.Sequences
	res.Lineage = Lineage{ConfigHash: hash, InitHash: initHash, PrepareHash: prepHash, MixtureHash: mix.Manifest.MixtureConfigHash, EvalHashes: map[string]string{}}
	if res.Lineage.ShardsHash, err = fileHash(filepath.Join(shardDir, shards.ManifestName)); err != nil {
		return PointResult{}, err
	}

	// Train.
	tc := p.Train
	tc.SeqLen = p.Mixture.SeqLen
	tc.Data = shardDir
	tc.Out = filepath.Join(dir, "train")
	if tc.Backend == "" {
		tc.Backend = env.Backend
	}
	// Resume only checkpoints this very point started (same hash); anything
	// else under train/ is from other settings and is cleared.
	started := filepath.Join(dir, "started")
	tc.Force = true // train/ holds at most this point's own interrupted attempt
	if b, err := os.ReadFile(started); err == nil && string(b) == hash {
		if _, err := os.Stat(filepath.Join(tc.Out, "checkpoints")); err == nil {
			tc.Resume = true
		}
	} else {
		if err := os.RemoveAll(tc.Out); err != nil {
			return PointResult{}, err
		}
		if err := storage.WriteFile(ctx, started, []byte(hash)); err != nil {
			return PointResult{}, err
		}
	}
	if tc.Eval.Every > 0 && tc.Eval.Suite == "" {
		// In-training evals default to the point's own suite and tokenizer.
		if tc.Eval.SuiteConfig == nil {
			suite := p.Eval
			tc.Eval.SuiteConfig = &suite
		}
		if tc.Eval.Tokenizer == "" {
			tc.Eval.Tokenizer = env.Tokenizer
		}
	}
	src, err := trainer.OpenShardSource(ctx, shardDir, tc.Seed, tc.SeqLen)
	if err != nil {
		return PointResult{}, fmt.Errorf("point %s: %w", p.Name, err)
	}
	logf("train %d steps at seq_len %d, rope_theta %g, from %s", tc.Steps, tc.SeqLen, tc.RopeTheta, firstNonEmpty(tc.Init, tc.ModelConfig))
	var progress io.Writer = io.Discard
	if env.Log != nil {
		progress = env.Log
	}
	tr, err := trainer.Train(ctx, tc, src, progress)
	src.Close()
	if err != nil {
		return PointResult{}, fmt.Errorf("point %s: train: %w", p.Name, err)
	}
	tr.Weights = nil
	res.Train = tr
	res.RopeTheta = tc.RopeTheta
	if res.Lineage.CheckpointHash, err = eval.HashDir(tr.Export); err != nil {
		return PointResult{}, err
	}

	// Evaluate.
	sc := p.Eval
	sc.Checkpoints = []string{tr.Export}
	sc.Out = filepath.Join(dir, "eval")
	suite, err := eval.RunSuite(sc, func(d string) (eval.Subject, error) { return LoadSubject(d, env.Tokenizer, env.Backend) }, logf)
	if err != nil {
		return PointResult{}, fmt.Errorf("point %s: eval: %w", p.Name, err)
	}
	reps := suite.Reports[eval.CheckpointName(tr.Export)]
	if res.Metrics, err = eval.MergeMetrics(reps...); err != nil {
		return PointResult{}, err
	}
	res.Items = eval.MergeItems(reps...)
	for _, r := range reps {
		res.Lineage.EvalHashes[r.Eval] = eval.HashStrings([]string{r.ModelHash, r.DataHash, r.ConfigHash})
	}
	if err := WritePoint(ctx, dir, res); err != nil {
		return PointResult{}, err
	}
	logf("done: loss %.3f -> %.3f, %d metrics", tr.FirstLoss, tr.FinalLoss, len(res.Metrics))
	return res, nil
}

// ReadPoint reads dir/point.json.
func ReadPoint(dir string) (PointResult, error) {
	var r PointResult
	b, err := os.ReadFile(filepath.Join(dir, PointFile))
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%s: %w", filepath.Join(dir, PointFile), err)
	}
	return r, nil
}

// WritePoint writes dir/point.json atomically.
func WritePoint(ctx context.Context, dir string, r PointResult) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return storage.WriteFile(ctx, filepath.Join(dir, PointFile), append(b, '\n'))
}

// LoadSubject opens an HF checkpoint directory for evaluation with the given
// tokenizer: a tokenizer.json path, "bytes" for byte-level models, or ""
// for the checkpoint's own tokenizer.json.
func LoadSubject(dir, tokPath, backendSpec string) (eval.Subject, error) {
	w, err := trainer.LoadHF(dir)
	if err != nil {
		return eval.Subject{}, err
	}
	backend, err := trainer.NewBackend(backendSpec)
	if err != nil {
		return eval.Subject{}, err
	}
	gen, err := trainer.NewGenerator(backend, w)
	if err != nil {
		return eval.Subject{}, err
	}
	var tok eval.Tokenizer = eval.Bytes{}
	if tokPath != "bytes" {
		if tokPath == "" {
			tokPath = filepath.Join(dir, "tokenizer.json")
		}
		t, err := tokenizer.Load(tokPath)
		if err != nil {
			return eval.Subject{}, err
		}
		tok = t
	}
	hash, err := eval.HashDir(dir)
	if err != nil {
		return eval.Subject{}, err
	}
	return eval.Subject{LM: gen, Tok: tok, Name: dir, Hash: hash}, nil
}

func fileHash(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:]), nil
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

var errNoPoints = errors.New("sweep: no points")
