package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"longctx/config"
	"longctx/shards"
)

// The shipped mixture configs load strictly and validate.
func TestMixConfigsLoad(t *testing.T) {
	paths, _ := filepath.Glob("../../configs/mixtures/*.yaml")
	if len(paths) < 3 {
		t.Fatalf("found %d mixture configs", len(paths))
	}
	for _, p := range paths {
		cfg := defaultMixConfig()
		if err := config.Load(p, &cfg); err != nil {
			t.Fatal(err)
		}
		if err := cfg.Mixture.Validate(); err != nil {
			t.Errorf("%s: %v", p, err)
		}
		if cfg.Prepare == "" || cfg.Output == "" {
			t.Errorf("%s: prepare/output missing", p)
		}
	}
}

// writeCaches writes two tiny sources as token caches plus a prepare
// manifest and returns the manifest path.
func writeCaches(t *testing.T, dir string) string {
	t.Helper()
	ctx := context.Background()
	pm := &shards.PrepareManifest{Version: 1, TokenizerHash: "tok"}
	for si, name := range []string{"a", "b"} {
		rel := name + ".tokcache"
		cw, err := shards.CreateCache(ctx, filepath.Join(dir, rel), shards.CacheHeader{Source: name})
		if err != nil {
			t.Fatal(err)
		}
		ref := shards.CacheRef{Path: rel}
		for d := 0; d < 40; d++ {
			toks := make([]uint32, 10+(d*37+si*11)%150)
			for i := range toks {
				toks[i] = uint32(si*1000 + d)
			}
			cw.Add(fmt.Sprintf("%s%d", name, d), toks)
			ref.Docs++
			ref.Tokens += int64(len(toks))
		}
		if _, err := cw.Close(); err != nil {
			t.Fatal(err)
		}
		pm.Sources = append(pm.Sources, shards.PreparedSource{Name: name, Docs: ref.Docs, Tokens: ref.Tokens, Caches: []shards.CacheRef{ref}})
	}
	p := filepath.Join(dir, "manifest.json")
	if err := shards.WritePrepareManifest(ctx, p, pm); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMixAndShardsCommands(t *testing.T) {
	dir := t.TempDir()
	prep := writeCaches(t, dir)
	cfg := filepath.Join(dir, "mix.yaml")
	out := filepath.Join(dir, "mix")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`prepare: %s
output: %s
group_tokens: 2000
chunk_tokens: 256
mixture:
  name: cli
  total_tokens: 6000
  seq_len: 64
  seed: 3
  sources:
    - {name: a, weight: 1}
    - {name: b, weight: 3}
`, prep, out)), 0o644)
	var so, se bytes.Buffer
	if code := runMain([]string{"mix", "--config", cfg, "-workers", "2"}, &so, &se); code != 0 {
		t.Fatalf("mix exit %d: %s", code, se.String())
	}
	for _, verb := range [][]string{{"inspect", out}, {"verify", out}, {"stats", out}, {"export", "--format", "megatron", "--token-size", "4", "--out", filepath.Join(dir, "meg"), out}} {
		if code := runMain(append([]string{"shards"}, verb...), &so, &se); code != 0 {
			t.Fatalf("shards %v exit %d: %s", verb, code, se.String())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "meg", "shard-00000.idx")); err != nil {
		t.Error(err)
	}
	// A flipped byte makes verify exit 1, naming shard and chunk.
	victim := filepath.Join(out, "shard-00001.lcs")
	data, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-3] ^= 0xff
	os.WriteFile(victim, data, 0o644)
	se.Reset()
	if code := runMain([]string{"shards", "verify", out}, &so, &se); code != 1 || !strings.Contains(se.String(), "shard-00001.lcs") {
		t.Fatalf("verify of a corrupt shard: exit %d, %q", code, se.String())
	}
	if code := runMain([]string{"shards", "export", "--format", "bogus", "--out", dir, out}, &so, &se); code != 2 {
		t.Errorf("bad export format: exit %d", code)
	}
}
