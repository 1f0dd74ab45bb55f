package eval

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// GSM8kGen sets the synthetic GSM8k-format generator: arithmetic word
// problems whose answers show the working with calculator annotations
// <<a+b=c>> and end in "#### N", like openai/gsm8k.
type GSM8kGen struct {
	Seed uint64 `yaml:"seed" help:"generator seed"`
	// MaxOperand bounds every number in a question (>= 2).
	MaxOperand int `yaml:"max_operand" help:"largest number in a question"`
	// Steps is the largest number of operations in one problem (1..3).
	Steps int `yaml:"steps" help:"most operations per problem (1-3)"`
}

// DefaultGSM8kGen makes mixed one- to three-step problems with numbers up to
// 20.
func DefaultGSM8kGen(seed uint64) GSM8kGen { return GSM8kGen{Seed: seed, MaxOperand: 20, Steps: 3} }

// GenerateGSM8kFormat returns n problems from the default generator with the
// given seed. The same seed and n always give the same problems, and the
// first k of n are the k of GenerateGSM8kFormat(seed, k).
func GenerateGSM8kFormat(seed uint64, n int) []GSM8kExample {
	return DefaultGSM8kGen(seed).Generate(0, n)
}

// GenerateSplits returns a train and a test split from one generator;
// test questions never repeat a train question. It fails when the operand
// range is too small to find nTest new questions.
func (g GSM8kGen) GenerateSplits(nTrain, nTest int) (train, test []GSM8kExample, err error) {
	train = g.Generate(0, nTrain)
	seen := make(map[string]bool, nTrain)
	for _, ex := range train {
		seen[ex.Question] = true
	}
	// Test problems come from a separate stream, skipping train questions.
	for i := uint64(0); len(test) < nTest; i++ {
		if i > uint64(100*(nTest+1)) {
			return nil, nil, fmt.Errorf("gsm8k generator: cannot find %d test questions outside the %d train ones (max_operand %d, steps %d: range too small)", nTest, nTrain, g.MaxOperand, g.Steps)
		}
		ex := g.one(1, i)
		if !seen[ex.Question] {
			seen[ex.Question] = true
			test = append(test, ex)
		}
	}
	return train, test, nil
}

// Generate returns problems start..start+n-1 of stream 0.
func (g GSM8kGen) Generate(start, n int) []GSM8kExample {
	out := make([]GSM8kExample, n)
	for i := range out {
		out[i] = g.one(0, uint64(start+i))
	}
	return out
}

var (
	genNames = []string{"Ana", "Ben", "Carla", "Dev", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jia", "Kofi", "Lena"}
	genItems = []string{"apples", "books", "marbles", "stickers", "pencils", "cookies", "stamps", "shells", "cards", "coins"}
)

// one makes problem i of a stream; each problem has its own generator seeded
// from (seed, stream, i), so problems do not depend on each other.
func (g GSM8kGen) one(stream, i uint64) GSM8kExample {
	r := rand.New(rand.NewPCG(g.Seed^0x9e3779b97f4a7c15*(stream+1), i))
	maxOp := max(g.MaxOperand, 2)
	num := func() int { return 1 + r.IntN(maxOp) }
	name := genNames[r.IntN(len(genNames))]
	item := genItems[r.IntN(len(genItems))]
	steps := 1 + r.IntN(max(1, min(g.Steps, 3)))

	total := num()
	q := fmt.Sprintf("%s has %d %s.", name, total, item)
	var work string
	for s := 0; s < steps; s++ {
		switch op := r.IntN(3); {
		case op == 0:
			k := num()
			q += fmt.Sprintf(" %s gets %d more %s.", pronoun(name), k, item)
			work += fmt.Sprintf("After getting %d more, %s has %d+%d = <<%d+%d=%d>>%d %s.\n", k, name, total, k, total, k, total+k, total+k, item)
			total += k
		case op == 1 && total > 1:
			k := 1 + r.IntN(total-1)
			q += fmt.Sprintf(" %s gives away %d %s.", pronoun(name), k, item)
			work += fmt.Sprintf("After giving away %d, %s has %d-%d = <<%d-%d=%d>>%d %s.\n", k, name, total, k, total, k, total-k, total-k, item)
			total -= k
		default:
			k := 2 + r.IntN(2)
			q += fmt.Sprintf(" Then the number of %s %s has becomes %d times as many.", item, name, k)
			work += fmt.Sprintf("%d times as many is %d*%d = <<%d*%d=%d>>%d %s.\n", k, total, k, total, k, total*k, total*k, item)
			total *= k
		}
	}
	q += fmt.Sprintf(" How many %s does %s have now?", item, name)
	return GSM8kExample{Question: q, Answer: fmt.Sprintf("%s#### %d", work, total)}
}

func pronoun(name string) string {
	switch name {
	case "Ana", "Carla", "Fatima", "Hana", "Jia", "Lena":
		return "She"
	}
	return "He"
}

// GenerateGSM8kSplits is GenerateSplits of the default generator.
func GenerateGSM8kSplits(seed uint64, nTrain, nTest int) (train, test []GSM8kExample, err error) {
	return DefaultGSM8kGen(seed).GenerateSplits(nTrain, nTest)
}

// Document is one {"text": ...} line of a documents file.
type Document struct {
	Text string `json:"text"`
}

// GSM8kDocuments splits examples into n documents, each the examples in the
// few-shot layout ("Question: q\nAnswer: a" joined by blank lines): long
// text for perplexity-by-position smoke runs and demo training data.
func GSM8kDocuments(exs []GSM8kExample, n int) []Document {
	n = max(1, min(n, len(exs)))
	docs := make([]Document, n)
	per := (len(exs) + n - 1) / n
	for i := range docs {
		var b strings.Builder
		for j := i * per; j < min((i+1)*per, len(exs)); j++ {
			if b.Len() > 0 {
				b.WriteString(gsm8kShotDelim)
			}
			b.WriteString(gsm8kQuestion(exs[j]) + gsm8kTargetDelim + exs[j].Answer)
		}
		docs[i].Text = b.String()
	}
	return docs
}
