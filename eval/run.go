package eval

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"longctx/shards"
	"longctx/storage"
)

// Subject is the checkpoint under evaluation: the model, its tokenizer and
// the name and hash its reports carry.
type Subject struct {
	LM   LM
	Tok  Tokenizer
	Name string // the model directory as given
	Hash string // HashDir of the model directory
}

// Progress is told how many of total items are done; nil is allowed.
type Progress func(done, total int)

func (p Progress) call(done, total int) {
	if p != nil {
		p(done, total)
	}
}

// RunGSM8kEval runs GSM8k on the subject and writes gsm8k.json, gsm8k.md and
// gsm8k.jsonl (one record per question) to outDir.
func RunGSM8kEval(s Subject, cfg GSM8kConfig, outDir string, progress Progress) (*Report, error) {
	if cfg.Train == "" || cfg.Test == "" {
		return nil, fmt.Errorf("gsm8k: train and test files are required")
	}
	train, err := ReadGSM8k(cfg.Train)
	if err != nil {
		return nil, err
	}
	test, err := ReadGSM8k(cfg.Test)
	if err != nil {
		return nil, err
	}
	dataHash, err := HashFiles(cfg.Train, cfg.Test)
	if err != nil {
		return nil, err
	}
	total := len(test)
	if cfg.Limit > 0 && cfg.Limit < total {
		total = cfg.Limit
	}
	recs, err := RunGSM8k(s.LM, s.Tok, train, test, cfg, func(d int) { progress.call(d, total) })
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, err
	}
	if err := WriteJSONL(filepath.Join(outDir, "gsm8k.jsonl"), recs); err != nil {
		return nil, err
	}
	r := &Report{
		Eval: "gsm8k", Model: s.Name, ModelHash: s.Hash, DataHash: dataHash,
		ConfigHash: hashConfig(cfg), Config: cfg, Metrics: GSM8kMetrics(recs),
		Items: GSM8kItems(recs), Files: []string{"gsm8k.jsonl"},
	}
	var invalid int
	for _, rec := range recs {
		if rec.ExtractedStrict == Invalid {
			invalid++
		}
	}
	r.Tables = append(r.Tables, Table{Title: "Protocol", Header: []string{"setting", "value"}, Rows: [][]string{
		{"questions", fmt.Sprint(len(recs))},
		{"shots", fmt.Sprint(cfg.Shots)},
		{"few-shot seed", fmt.Sprint(cfg.Seed)},
		{"max new tokens", fmt.Sprint(cfg.MaxNew)},
		{"answers without `#### N`", fmt.Sprint(invalid)},
	}})
	return r, r.Write(outDir, "gsm8k")
}

// RunPasskeyEval runs the passkey or NIAH grid and writes <task>.json, .md,
// .jsonl and a heatmap <task>.png to outDir.
func RunPasskeyEval(s Subject, cfg PasskeyConfig, outDir string, progress Progress) (*Report, error) {
	filler := ""
	dataHash := ""
	if cfg.Haystack != "" {
		b, err := os.ReadFile(cfg.Haystack)
		if err != nil {
			return nil, err
		}
		filler = strings.Join(strings.Fields(string(b)), " ")
		if filler == "" {
			return nil, fmt.Errorf("passkey: haystack %s is empty", cfg.Haystack)
		}
		if dataHash, err = HashFiles(cfg.Haystack); err != nil {
			return nil, err
		}
	}
	prompts, err := PasskeyPrompts(s.Tok, cfg, filler)
	if err != nil {
		return nil, err
	}
	texts := make([]string, len(prompts))
	for i, p := range prompts {
		texts[i] = p.Text
	}
	if dataHash == "" {
		dataHash = HashStrings(texts)
	}
	fit := 0
	for _, p := range prompts {
		if p.Tokens+PasskeyMaxNew <= s.LM.MaxPositions() {
			fit++
		}
	}
	recs, err := RunPasskey(s.LM, s.Tok, prompts, cfg.BatchSize, func(d int) { progress.call(d, fit) })
	if err != nil {
		return nil, err
	}
	beyond := len(prompts) - fit
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, err
	}
	task := cfg.Task
	if err := WriteJSONL(filepath.Join(outDir, task+".jsonl"), recs); err != nil {
		return nil, err
	}
	grid := PasskeyTable(recs, cfg.Lengths, cfg.Depths)
	if err := PasskeyHeatmap(filepath.Join(outDir, task+".png"), task+" accuracy (%)", grid); err != nil {
		return nil, err
	}
	r := &Report{
		Eval: task, Model: s.Name, ModelHash: s.Hash, DataHash: dataHash,
		ConfigHash: hashConfig(cfg), Config: cfg, Metrics: PasskeyMetrics(task, recs), Items: PasskeyItems(task, recs),
		Tables: []Table{grid.Table("Accuracy (%) by length (tokens) and depth")},
		Files:  []string{task + ".jsonl", task + ".png"},
	}
	if beyond > 0 {
		r.Tables = append(r.Tables, Table{Title: "Not run", Header: []string{"prompts beyond the model's positions (scored wrong)", "model positions"},
			Rows: [][]string{{fmt.Sprint(beyond), fmt.Sprint(s.LM.MaxPositions())}}})
	}
	return r, r.Write(outDir, task)
}

// ReadDocuments reads evaluation documents: .txt files are one document
// each; .jsonl/.json files hold one {"text": ...} per line. Lines without
// text are an error naming file and line.
func ReadDocuments(paths []string) ([]string, error) {
	var docs []string
	for _, p := range paths {
		if strings.HasSuffix(p, ".jsonl") || strings.HasSuffix(p, ".json") {
			f, err := storage.Open(context.Background(), p)
			if err != nil {
				return nil, err
			}
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 1<<20), 256<<20)
			line := 0
			for sc.Scan() {
				line++
				if strings.TrimSpace(sc.Text()) == "" {
					continue
				}
				var d struct {
					Text *string `json:"text"`
				}
				if err := json.Unmarshal(sc.Bytes(), &d); err != nil || d.Text == nil {
					f.Close()
					if err == nil {
						err = fmt.Errorf("no \"text\" field")
					}
					return nil, fmt.Errorf("%s:%d: %w", p, line, err)
				}
				docs = append(docs, *d.Text)
			}
			err = sc.Err()
			f.Close()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			continue
		}
		b, err := storage.ReadFile(context.Background(), p)
		if err != nil {
			return nil, err
		}
		docs = append(docs, string(b))
	}
	return docs, nil
}

// errEnough stops a token cache walk once enough documents are read.
var errEnough = errors.New("enough documents")

// ReadCacheDocuments reads already tokenized documents from token caches
// (shards format, written by prepare): those with at least minTokens
// tokens, truncated to window, at most maxDocs in all (0 = no limit). A
// cache made with another tokenizer than tok (when both name one) is an
// error. It also returns how many documents were too short.
func ReadCacheDocuments(paths []string, tok Tokenizer, window, minTokens, maxDocs int) (docs [][]uint32, short int, err error) {
	ctx := context.Background()
	for _, p := range paths {
		c, err := shards.OpenCache(ctx, p)
		if err != nil {
			return nil, 0, err
		}
		h, ok := tok.(interface{ Hash() string })
		if th := c.Header().TokenizerHash; ok && th != "" && h.Hash() != "" && th != h.Hash() {
			c.Close()
			return nil, 0, fmt.Errorf("%s: token cache made with tokenizer %s, the model's is %s", p, th, h.Hash())
		}
		err = c.ForEach(func(_ int, _ shards.CacheEntry, toks []uint32) error {
			if maxDocs > 0 && len(docs) >= maxDocs {
				return errEnough
			}
			if len(toks) < max(minTokens, 2) {
				short++
				return nil
			}
			n := len(toks)
			if window > 0 {
				n = min(n, window)
			}
			docs = append(docs, append([]uint32(nil), toks[:n]...))
			return nil
		})
		c.Close()
		if err != nil && !errors.Is(err, errEnough) {
			return nil, 0, fmt.Errorf("%s: %w", p, err)
		}
	}
	return docs, short, nil
}

// RunPPLEval scores documents (cfg.Data text files, see ReadDocuments, and
// cfg.Caches token caches) and writes ppl.json, ppl.md and the loss curve
// ppl.png to outDir.
func RunPPLEval(s Subject, cfg PPLConfig, outDir string, progress Progress) (*Report, error) {
	if len(cfg.Data) == 0 && len(cfg.Caches) == 0 {
		return nil, fmt.Errorf("ppl: no data files or token caches")
	}
	texts, err := ReadDocuments(cfg.Data)
	if err != nil {
		return nil, err
	}
	dataHash, err := HashFiles(append(append([]string(nil), cfg.Data...), cfg.Caches...)...)
	if err != nil {
		return nil, err
	}
	docs := make([][]uint32, len(texts))
	for i, t := range texts {
		docs[i] = s.Tok.Encode(t)
	}
	window := min(cfg.Window, s.LM.MaxPositions())
	if window <= 0 {
		window = s.LM.MaxPositions()
	}
	cacheShort := 0
	if left := cfg.MaxDocs - len(docs); len(cfg.Caches) > 0 && (cfg.MaxDocs == 0 || left > 0) {
		if cfg.MaxDocs == 0 {
			left = 0
		}
		cached, short, err := ReadCacheDocuments(cfg.Caches, s.Tok, window, cfg.MinTokens, left)
		if err != nil {
			return nil, err
		}
		docs = append(docs, cached...)
		cacheShort = short
	}
	res, err := RunPPL(s.LM, docs, cfg, func(d int) { progress.call(d, len(docs)) })
	if err != nil {
		return nil, err
	}
	res.Skipped += cacheShort
	if res.Scored == 0 {
		return nil, fmt.Errorf("ppl: no document long enough (%d skipped below %d tokens)", res.Skipped, cfg.MinTokens)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, err
	}
	if err := LossCurve(filepath.Join(outDir, "ppl.png"), "mean loss by position", res.Losses.Curve(cfg.CurvePoints, window)); err != nil {
		return nil, err
	}
	metrics, items := PPLMetrics(res, cfg.Buckets), PPLItems(res, cfg.Buckets)
	for k, it := range items {
		if m, ok := metrics[k]; ok {
			m.StdErr = BootstrapSE(it)
			metrics[k] = m
		}
	}
	r := &Report{
		Eval: "ppl", Model: s.Name, ModelHash: s.Hash, DataHash: dataHash,
		ConfigHash: hashConfig(cfg), Config: cfg, Metrics: metrics, Items: items,
		Tables: []Table{PPLTable(res.Losses.Buckets(cfg.Buckets)), {Title: "Documents", Header: []string{"scored", "skipped (too short)"},
			Rows: [][]string{{fmt.Sprint(res.Scored), fmt.Sprint(res.Skipped)}}}},
		Files: []string{"ppl.png"},
	}
	return r, r.Write(outDir, "ppl")
}

func hashConfig(cfg any) string {
	b, err := json.Marshal(cfg)
	if err != nil {
		panic(err)
	}
	return HashStrings([]string{string(b)})
}
