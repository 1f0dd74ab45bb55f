package recipe

import (
	"fmt"
	"testing"

	"longctx/eval"
)

func accPoint(name string, correct []bool) PointResult {
	it := eval.Items{}
	c := 0
	for i, ok := range correct {
		it.IDs = append(it.IDs, fmt.Sprint("q", i))
		s := 0.0
		if ok {
			s, c = 1, c+1
		}
		it.Score = append(it.Score, s)
	}
	m := eval.Proportion(c, len(correct))
	return PointResult{Name: name, Metrics: map[string]eval.Metric{"acc": m}, Items: map[string]eval.Items{"acc": it}}
}

// PairedDiff is candidate − baseline with a paired interval: a large,
// consistent gain is significant, a tie is not, the sign follows the
// metric's direction, and unpaired items are an error.
func TestPairedDiff(t *testing.T) {
	n := 200
	base, better, same := make([]bool, n), make([]bool, n), make([]bool, n)
	for i := range n {
		base[i] = i%4 == 0   // 25%
		better[i] = i%4 != 3 // 75%, a superset of base's items
		same[i] = i%4 == 1   // 25%, different items
	}
	d, err := PairedDiff("e", "acc", accPoint("b", base), accPoint("c", better))
	if err != nil {
		t.Fatal(err)
	}
	if d.N != n || d.Diff != 50 || !d.Significant || d.Lo <= 0 || d.Hi < d.Diff || d.Lo > d.Diff || d.P > 1e-6 {
		t.Errorf("gain: %+v", d)
	}
	d, err = PairedDiff("e", "acc", accPoint("c", better), accPoint("b", base))
	if err != nil {
		t.Fatal(err)
	}
	if d.Diff != -50 || !d.Significant || d.Hi >= 0 {
		t.Errorf("loss: %+v", d)
	}
	d, err = PairedDiff("e", "acc", accPoint("b", base), accPoint("s", same))
	if err != nil {
		t.Fatal(err)
	}
	if d.Diff != 0 || d.Significant || d.Lo >= 0 || d.Hi <= 0 || d.P < 0.9 {
		t.Errorf("tie: %+v", d)
	}
	// Losses: lower is better; candidate − baseline keeps the sign of the
	// loss change.
	lb := PointResult{Name: "b", Metrics: map[string]eval.Metric{"loss": {Value: 2}}, Items: map[string]eval.Items{"loss": {IDs: []string{"a", "b", "c"}, Score: []float64{20, 22, 18}, Count: []float64{10, 11, 9}}}}
	lc := PointResult{Name: "c", Metrics: map[string]eval.Metric{"loss": {Value: 1}}, Items: map[string]eval.Items{"loss": {IDs: []string{"a", "b", "c"}, Score: []float64{10, 11, 9}, Count: []float64{10, 11, 9}}}}
	d, err = PairedDiff("e", "loss", lb, lc)
	if err != nil {
		t.Fatal(err)
	}
	if d.Diff != -1 || d.Hi >= 0 || !d.Significant {
		t.Errorf("loss drop: %+v", d)
	}
	short := accPoint("s", base[:10])
	if _, err := PairedDiff("e", "acc", accPoint("b", base), short); err == nil {
		t.Error("items of different length compared")
	}
	if _, err := PairedDiff("e", "acc", accPoint("b", base), PointResult{Name: "x", Metrics: map[string]eval.Metric{"acc": {}}}); err == nil {
		t.Error("a point without items compared")
	}
}
