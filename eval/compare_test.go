package eval

import (
	"path/filepath"
	"strings"
	"testing"
)

func report(eval string, ms map[string]Metric) *Report {
	return &Report{Eval: eval, Model: "m", ModelHash: "h", Metrics: ms}
}

func TestCompareMetrics(t *testing.T) {
	base := map[string]Metric{
		"gsm8k_strict":   Proportion(400, 1319),
		"gsm8k_flexible": Proportion(420, 1319),
		"loss":           {Value: 2.0},
	}
	cases := []struct {
		name    string
		cand    map[string]Metric
		drops   []string
		sig     bool
		fail    []string
		wantErr string
	}{
		{"same", base, []string{"gsm8k=2.0", "loss=0.05"}, false, nil, ""},
		{"small drop", map[string]Metric{"gsm8k_strict": Proportion(390, 1319), "gsm8k_flexible": Proportion(420, 1319), "loss": {Value: 2.01}},
			[]string{"gsm8k=2.0,loss=0.05"}, false, nil, ""},
		{"regression", map[string]Metric{"gsm8k_strict": Proportion(350, 1319), "gsm8k_flexible": Proportion(420, 1319), "loss": {Value: 2.1}},
			[]string{"gsm8k=2.0", "loss=0.05"}, false, []string{"gsm8k_strict", "loss"}, ""},
		{"regression not significant", map[string]Metric{"gsm8k_strict": Proportion(370, 1319), "gsm8k_flexible": Proportion(420, 1319)},
			[]string{"gsm8k_strict=1.0"}, true, nil, ""},
		{"in s.e.", map[string]Metric{"gsm8k_strict": Proportion(350, 1319), "gsm8k_flexible": Proportion(420, 1319)},
			[]string{"gsm8k_strict=2se"}, false, []string{"gsm8k_strict"}, ""},
		{"improvement", map[string]Metric{"gsm8k_strict": Proportion(500, 1319), "gsm8k_flexible": Proportion(500, 1319)},
			[]string{"gsm8k=0"}, false, nil, ""},
		{"unknown metric", base, []string{"mmlu=1"}, false, nil, "no such metric"},
		{"missing in candidate", map[string]Metric{"gsm8k_strict": base["gsm8k_strict"]}, []string{"gsm8k=1"}, false, nil, "not in the candidate"},
	}
	for _, c := range cases {
		md, err := ParseMaxDrops(c.drops)
		if err != nil {
			t.Fatal(err)
		}
		cmps, err := CompareMetrics(base, c.cand, md, c.sig)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: err %v, want %q", c.name, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var fail []string
		for _, cmp := range cmps {
			if cmp.Fail {
				fail = append(fail, cmp.Metric)
			}
		}
		if strings.Join(fail, ",") != strings.Join(c.fail, ",") {
			t.Errorf("%s: failed %v, want %v\n%v", c.name, fail, c.fail, cmps)
		}
	}
	for _, bad := range []string{"gsm8k", "gsm8k=-1", "=2", "gsm8k=x"} {
		if _, err := ParseMaxDrops([]string{bad}); err == nil {
			t.Errorf("ParseMaxDrops(%q): want error", bad)
		}
	}
}

func TestComparisonLineNamesDropAndCI(t *testing.T) {
	md, _ := ParseMaxDrops([]string{"gsm8k_strict=2"})
	cmps, _ := CompareMetrics(map[string]Metric{"gsm8k_strict": Proportion(40, 100)}, map[string]Metric{"gsm8k_strict": Proportion(30, 100)}, md, false)
	// drop 10 points; s.e. = hypot(4.899, 4.583) = 6.708; CI 10 ± 13.15; p = 2(1-Φ(10/6.708)) = 0.136.
	line := cmps[0].String()
	for _, want := range []string{"REGRESSION", "gsm8k_strict", "drop +10", "-3.148..+23.15", "s.e. 6.71", "p 0.136", "unpaired", "allowed 2"} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q lacks %q", line, want)
		}
	}
}

func TestReportRoundTripAndRank(t *testing.T) {
	dir := t.TempDir()
	r := report("gsm8k", map[string]Metric{"gsm8k_strict": Proportion(3, 10)})
	r.Tables = []Table{{Title: "x", Header: []string{"a"}, Rows: [][]string{{"1"}}}}
	if err := r.Write(dir, "gsm8k"); err != nil {
		t.Fatal(err)
	}
	got, err := ReadReport(filepath.Join(dir, "gsm8k.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Metrics["gsm8k_strict"] != r.Metrics["gsm8k_strict"] || got.ModelHash != "h" {
		t.Fatalf("round trip: %+v", got)
	}

	cands := []Candidate{
		{"step-100", map[string]Metric{"gsm8k_strict": Proportion(30, 100), "passkey_acc": Proportion(20, 100), "loss": {Value: 2}}},
		{"step-200", map[string]Metric{"gsm8k_strict": Proportion(29, 100), "passkey_acc": Proportion(80, 100), "loss": {Value: 1.9}}},
		{"step-300", map[string]Metric{"gsm8k_strict": Proportion(10, 100), "passkey_acc": Proportion(100, 100), "loss": {Value: 1.8}}},
	}
	cfg := SelectConfig{Weights: map[string]float64{"gsm8k": 1, "passkey": 1}, Random: map[string]float64{"passkey": 0}}
	rs, err := Rank(cands, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rs[0].Name != "step-300" || rs[0].Score != 55 {
		t.Fatalf("ungated best %s %.2f", rs[0].Name, rs[0].Score)
	}
	cfg.Reference, cfg.MaxDrop = "step-100", map[string]string{"gsm8k": "2"}
	rs, err = Rank(cands, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rs[0].Name != "step-200" || rs[2].Name != "step-300" || len(rs[2].Failed) != 1 {
		t.Fatalf("gated ranking %v %v %v", rs[0].Name, rs[1].Name, rs[2].Name)
	}
	md := RankTable(rs).Markdown()
	if !strings.Contains(md, "| 1 | step-200 | 54.500 | 29 | 80 | pass |") || !strings.Contains(md, "FAIL: gsm8k_strict drop 20") {
		t.Fatalf("table:\n%s", md)
	}
	if _, err := Rank(cands, SelectConfig{Weights: map[string]float64{"mmlu": 1}}); err == nil {
		t.Error("missing metric: want error")
	}
}

// A key naming a metric exactly means that metric only; otherwise it covers
// the metrics it prefixes.
func TestExactNameBeforePrefix(t *testing.T) {
	ms := map[string]Metric{
		"passkey_acc": Proportion(5, 10), "passkey_acc@1024": Proportion(10, 10), "passkey_acc@2048": Proportion(0, 10),
		"gsm8k_strict": Proportion(1, 10), "gsm8k_flexible": Proportion(2, 10),
	}
	for key, want := range map[string]string{
		"passkey_acc": "passkey_acc", "passkey": "passkey_acc passkey_acc@1024 passkey_acc@2048",
		"gsm8k": "gsm8k_flexible gsm8k_strict", "passkey_acc@2048": "passkey_acc@2048", "mmlu": "",
	} {
		if got := strings.Join(selectMetrics(key, ms), " "); got != want {
			t.Errorf("%s: %q, want %q", key, got, want)
		}
	}
	rs, err := Rank([]Candidate{{"a", ms}}, SelectConfig{Weights: map[string]float64{"passkey_acc": 1}})
	if err != nil {
		t.Fatal(err)
	}
	if rs[0].Score != 50 || len(rs[0].Parts) != 1 {
		t.Errorf("score %v parts %v", rs[0].Score, rs[0].Parts)
	}
}
