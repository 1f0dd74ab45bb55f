package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"longctx/trainer"
)

func init() {
	register(&command{
		name:    "model",
		summary: "create a random model in HF layout, or print a model's logits",
		run: func(args []string) error {
			return dispatch("model", args, map[string]subcommand{
				"init":    {"write a randomly initialised model (config.json + model.safetensors)", modelInit},
				"forward": {"print the logits of a token sequence", modelForward},
			})
		},
	})
}

func modelInit(args []string) error {
	fs := newFlags("model init", "model init --config MODEL.yaml --out DIR [--seed N] [--dtype F32|BF16|F16]")
	cfgPath := fs.String("config", "", "model config YAML (configs/model/*.yaml)")
	out := fs.String("out", "", "output directory (HF layout)")
	seed := fs.Uint64("seed", 0, "random seed")
	dtype := fs.String("dtype", "F32", "safetensors dtype: F32, BF16 or F16")
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	if *cfgPath == "" || *out == "" {
		return usagef("--config and --out are required")
	}
	c, err := trainer.LoadModelConfig(*cfgPath)
	if err != nil {
		return err
	}
	w, err := trainer.InitWeights(c, *seed)
	if err != nil {
		return err
	}
	if err := trainer.SaveHF(*out, w, strings.ToUpper(*dtype)); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "model init: %s parameters (%d layers, hidden %d) -> %s\n",
		strconv.FormatInt(c.NumParams(), 10), c.NumHiddenLayers, c.HiddenSize, *out)
	return nil
}

func modelForward(args []string) error {
	fs := newFlags("model forward", "model forward --model DIR --ids 1,2,3 [--json] [--block N]")
	dir := fs.String("model", "", "model directory (HF layout)")
	idsFlag := fs.String("ids", "", "comma-separated token ids")
	asJSON := fs.Bool("json", false, "print {\"logits\": [[...], ...]} as JSON")
	block := fs.Int("block", 512, "attention block size (0 = naive reference attention)")
	backendSpec := fs.String("backend", "", "GoMLX backend (default $GOMLX_BACKEND or "+trainer.DefaultBackend+")")
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	if *dir == "" || *idsFlag == "" {
		return usagef("--model and --ids are required")
	}
	var ids []uint32
	for _, f := range strings.Split(*idsFlag, ",") {
		v, err := strconv.ParseUint(strings.TrimSpace(f), 10, 32)
		if err != nil {
			return usagef("--ids: %q is not a token id", f)
		}
		ids = append(ids, uint32(v))
	}
	w, err := trainer.LoadHF(*dir)
	if err != nil {
		return err
	}
	for i, id := range ids {
		if int(id) >= w.Config.VocabSize {
			return fmt.Errorf("--ids: token %d (position %d) is outside the vocabulary of %d", id, i, w.Config.VocabSize)
		}
	}
	backend, err := trainer.NewBackend(*backendSpec)
	if err != nil {
		return err
	}
	logits, err := trainer.Forward(backend, w, ids, *block)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(map[string]any{"ids": ids, "logits": logits})
	}
	for i, row := range logits {
		best := 0
		for v := range row {
			if row[v] > row[best] {
				best = v
			}
		}
		fmt.Printf("position %d id %d: argmax %d (logit %.4f)\n", i, ids[i], best, row[best])
	}
	return nil
}
