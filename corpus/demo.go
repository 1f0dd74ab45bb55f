// Package corpus writes sample corpora in the five real source layouts
// (Dolma books, The Stack, FineWeb-Edu, DCLM, FineMath): the demo corpus,
// the benchmark corpora and test files. It is data, not a pipeline: the
// readers in pipelines never use it.
package corpus

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"longctx/storage"
)

// DemoFile is one file of the generated sample corpus.
type DemoFile struct {
	Path      string `json:"path"` // relative to the corpus root
	Format    string `json:"format"`
	Records   int    `json:"records"`   // records written (good + malformed)
	Malformed int    `json:"malformed"` // of which deliberately malformed
	Bytes     int    `json:"bytes"`
}

// DemoVersion names the generator's output: runs that keep a corpus
// generated earlier compare it, so a changed generator regenerates.
const DemoVersion = "8-window-long-recalls"

// GenerateDemo writes a small sample corpus under dir in the five real
// layouts (paths mirror the real dumps), from synthesised text: long books,
// code above and below 8k tokens, educational web prose, web pages, and
// GSM8k-style math word problems with worked answers, plus a few
// deliberately malformed records. The output depends only on seed.
func GenerateDemo(ctx context.Context, dir string, seed uint64) ([]DemoFile, error) {
	return GenerateCorpus(ctx, dir, seed, 1)
}

// GenerateCorpus is GenerateDemo with every file's good records multiplied
// by scale (the malformed ones stay as they are); benchmarks use it to get
// realistic file sizes. Parquet row groups grow with scale too (real dumps
// hold thousands of rows per group; at scale 1 the demo's groups of 3-25
// rows make tests cross many of them).
func GenerateCorpus(ctx context.Context, dir string, seed uint64, scale int) ([]DemoFile, error) {
	g := &demoGen{r: rand.New(rand.NewPCG(seed, 0x6c6f6e67637478))}
	var out []DemoFile
	put := func(rel, format string, data []byte, records, malformed int) error {
		if err := storage.WriteFile(ctx, storage.Join(dir, rel), data); err != nil {
			return err
		}
		out = append(out, DemoFile{Path: rel, Format: format, Records: records, Malformed: malformed, Bytes: len(data)})
		return nil
	}

	// Dolma books: multi-member gzip JSON Lines; every book is long.
	book := func(i, words int) []byte {
		return JSONLine(map[string]any{"id": fmt.Sprintf("gutenberg-%05d", 1000+i), "text": g.book(words),
			"source": "gutenberg", "added": "2023-03-01T00:00:00.000Z", "created": "1890-01-01T00:00:00.000Z",
			"metadata": map[string]any{"title": g.title(), "language": "en"}})
	}
	var b bytes.Buffer
	if err := WriteGzipMembers(&b,
		[][]byte{book(0, 14000), book(1, 26000)},
		[][]byte{book(2, 9000), JSONLine([]byte(`{"id": "gutenberg-broken", "text": "The chapter begins`)),
			JSONLine(map[string]any{"id": "gutenberg-notext", "title": "No text here"}),
			JSONLine(map[string]any{"id": "gutenberg-number", "text": 1887}), book(3, 60000)}); err != nil {
		return nil, err
	}
	if err := put("dolma/books/books-0000.json.gz", "dolma", b.Bytes(), 7, 3); err != nil {
		return nil, err
	}
	b.Reset()
	more := [][]byte{book(4, 18000), JSONLine(map[string]any{"id": "gutenberg-empty", "text": ""}), book(5, 11000)}
	for i := 6; i < 6+3*(scale-1); i++ {
		more = append(more, book(i, 8000+g.r.IntN(40000)))
	}
	if err := WriteGzipMembers(&b, more); err != nil {
		return nil, err
	}
	if err := put("dolma/books/books-0001.json.gz", "dolma", b.Bytes(), len(more), 1); err != nil {
		return nil, err
	}

	// The Stack: code files above and below 8k tokens, one null content.
	for part, lang := range []string{"go", "python"} {
		var rows []StackRow
		sizes := []int{1400, 120, 900, 60, 2000, 300, 1100}
		for k := 1; k < scale; k++ {
			sizes = append(sizes, 60+g.r.IntN(2000))
		}
		for i, lines := range sizes {
			code := g.code(lang, lines)
			name := fmt.Sprintf("%s-%d", lang, i)
			ext := map[string]string{"go": "go", "python": "py"}[lang]
			rows = append(rows, StackRow{Hexsha: ptrTo(hashID("demo", name)[:40/2] + hashID(name)[:20]),
				Size: ptrTo(int64(len(code))), Ext: ptrTo(ext), Lang: ptrTo(map[string]string{"go": "Go", "python": "Python"}[lang]),
				MaxStarsRepoPath: ptrTo(fmt.Sprintf("pkg/mod%d/file%d.%s", i%3, i, ext)), MaxStarsRepoName: ptrTo("demo/" + lang + "-project"),
				MaxStarsRepoHeadHexsha: ptrTo(hashID("head", lang)[:40/2]), MaxStarsRepoLicenses: []string{"MIT"},
				MaxStarsCount: ptrTo(int64(10 * i)), Content: &code,
				AvgLineLength: ptrTo(float64(len(code)) / float64(lines)), MaxLineLength: ptrTo(int64(100)), AlphanumFraction: ptrTo(0.7)})
		}
		rows = append(rows, StackRow{Hexsha: ptrTo(hashID("null", lang)[:20]), Lang: ptrTo(lang)}) // content null
		b.Reset()
		if err := WriteParquet(&b, rows, int64(3*scale)); err != nil {
			return nil, err
		}
		if err := put(fmt.Sprintf("the-stack-dedup/data/%s/data-%05d-of-00002.parquet", lang, part), "stack", b.Bytes(), len(rows), 1); err != nil {
			return nil, err
		}
	}

	// FineWeb-Edu: educational prose; one null text, one empty, one with
	// invalid UTF-8 bytes (sanitised, not dropped).
	for part := 0; part < 2; part++ {
		var rows []FineWebEduRow
		for i := 0; i < 40*scale; i++ {
			text := g.edu(250 + g.r.IntN(900))
			if part == 1 && i == 5 {
				text += " Caf\xe9 au lait \xff\xfe costs more."
			}
			id := fmt.Sprintf("<urn:uuid:%s>", hashID("fwe", fmt.Sprint(part, i)))
			rows = append(rows, FineWebEduRow{Text: ptrTo(text), ID: &id, Dump: ptrTo("CC-MAIN-2024-10"),
				URL: ptrTo(fmt.Sprintf("https://learn.example.org/%d/%d", part, i)), Date: nil,
				FilePath: ptrTo("s3://commoncrawl/crawl-data/CC-MAIN-2024-10/segments/x.warc.gz"), Language: ptrTo("en"),
				LanguageScore: ptrTo(0.97), TokenCount: ptrTo(int64(len(text) / 4)), Score: ptrTo(3.1), IntScore: ptrTo(int64(3))})
		}
		mal := 0
		if part == 0 {
			rows = append(rows, FineWebEduRow{ID: ptrTo("<urn:uuid:null-text>")}, FineWebEduRow{ID: ptrTo("<urn:uuid:empty>"), Text: ptrTo(" ")})
			mal = 2
		}
		b.Reset()
		if err := WriteParquet(&b, rows, int64(16*scale)); err != nil {
			return nil, err
		}
		if err := put(fmt.Sprintf("fineweb-edu/sample/10BT/%03d_00000.parquet", part), "fineweb-edu", b.Bytes(), len(rows), mal); err != nil {
			return nil, err
		}
	}

	// DCLM: zstd JSON Lines, several frames; ids from WARC-Record-ID; the
	// second shard is truncated mid-frame.
	dclm := func(i int) []byte {
		return JSONLine(map[string]any{"text": g.web(200 + g.r.IntN(1200)), "url": fmt.Sprintf("https://www.example.com/post/%d", i),
			"warcinfo": "isPartOf: CC-MAIN-2023-06", "bff_contained_ngram_count_before_dedupe": 0, "previous_word_count": 300,
			"language_id_whole_page_fasttext":                                 map[string]any{"en": 0.98},
			"fasttext_openhermes_reddit_eli5_vs_rw_v2_bigram_200k_train_prob": 0.2,
			"metadata": map[string]any{"WARC-Type": "response", "WARC-Date": "2023-01-27T10:00:00Z",
				"WARC-Record-ID": fmt.Sprintf("<urn:uuid:%s>", hashID("dclm", fmt.Sprint(i))), "WARC-Target-URI": fmt.Sprintf("https://www.example.com/post/%d", i)}})
	}
	for shard := 0; shard < 2; shard++ {
		var frames [][][]byte
		n := 0
		for f := 0; f < 3; f++ {
			var lines [][]byte
			for i := 0; i < 15*scale; i++ {
				lines = append(lines, dclm(shard*100000+f*20000+i))
				n++
			}
			frames = append(frames, lines)
		}
		b.Reset()
		if err := WriteZstdFrames(&b, frames...); err != nil {
			return nil, err
		}
		data, mal := b.Bytes(), 0
		if shard == 1 {
			data, mal = data[:len(data)-200], 1 // truncated: the tail of the last frame is lost
		}
		if err := put(fmt.Sprintf("dclm-baseline-1.0/global-shard_01_of_10/local-shard_0_of_10/shard_%08d_processed.jsonl.zstd", shard), "dclm", data, n, mal); err != nil {
			return nil, err
		}
	}

	// FineMath: GSM8k-style word problems with worked answers.
	for part := 0; part < 2; part++ {
		var rows []FineMathRow
		for i := 0; i < 60*scale; i++ {
			text := g.mathPage(1 + g.r.IntN(4))
			url := fmt.Sprintf("https://math.example.net/problems/%d/%d", part, i)
			rows = append(rows, FineMathRow{URL: &url, FetchTime: ptrTo(int64(1700000000 + i)), ContentMimeType: ptrTo("text/html"),
				WarcFilename:     ptrTo(fmt.Sprintf("crawl-data/CC-MAIN-2023-50/segments/%d.warc.gz", part)),
				WarcRecordOffset: ptrTo(int32(i * 4096)), WarcRecordLength: ptrTo(int32(4000)), Text: &text,
				TokenCount: ptrTo(int32(len(text) / 4)), CharCount: ptrTo(int32(len(text))),
				Metadata: ptrTo(`{"warc_headers":{"warc-type":"response"},"extraction_info":{"found_math":true}}`),
				Score:    ptrTo(4.2), IntScore: ptrTo(int64(4)), Crawl: ptrTo("CC-MAIN-2023-50"), SnapshotType: ptrTo("latest"),
				Language: ptrTo("en"), LanguageScore: ptrTo(0.95)})
		}
		b.Reset()
		if err := WriteParquet(&b, rows, int64(25*scale)); err != nil {
			return nil, err
		}
		if err := put(fmt.Sprintf("finemath/finemath-4plus/train-%05d-of-00003.parquet", part), "finemath", b.Bytes(), len(rows), 0); err != nil {
			return nil, err
		}
	}
	// A FineMath file written with a wrong schema: no text column.
	b.Reset()
	type noText struct {
		URL     string `parquet:"url"`
		Content string `parquet:"content"`
	}
	if err := WriteParquet(&b, []noText{{"https://m/x", "1+1"}, {"https://m/y", "2+2"}, {"https://m/z", "3+3"}}, 10); err != nil {
		return nil, err
	}
	if err := put("finemath/finemath-4plus/train-00002-of-00003.parquet", "finemath", b.Bytes(), 3, 3); err != nil {
		return nil, err
	}
	return out, nil
}

func ptrTo[T any](v T) *T { return &v }

// demoGen synthesises text from a seeded generator.
type demoGen struct{ r *rand.Rand }

var (
	demoNouns = strings.Fields(`river house garden letter window captain village mountain child stranger road lamp
		harbour forest morning evening winter summer ship doctor teacher friend mother father brother sister
		king queen soldier farmer merchant bridge tower field kitchen library painting journey promise secret
		storm candle horse carriage station island valley market church castle clock mirror door`)
	demoVerbs = strings.Fields(`walked watched remembered carried opened followed answered found crossed left
		heard kept believed wrote read turned waited called noticed gathered returned closed began finished`)
	demoAdjs = strings.Fields(`old quiet bright narrow distant heavy gentle cold warm strange silent golden dark
		small great young tired careful proud simple broken hidden early late`)
	demoNames = strings.Fields(`Natalia Weng Betty Julie James Albert Mark Tina Ken Alexis Carla Brandon Maria
		Samuel Priya Omar Lena Hugo Ines Tomas`)
	demoItems  = strings.Fields(`apple notebook pencil ticket cupcake marble sticker book shirt plant`)
	demoTopics = strings.Fields(`photosynthesis volcanoes fractions electricity ecosystems the_water_cycle
		magnetism the_roman_empire cell_division probability climate plate_tectonics`)
)

func (g *demoGen) pick(list []string) string {
	// One word in eight is a made-up rare word (names, places, jargon), so
	// the vocabulary has a long tail like real text, not a hundred words.
	if g.r.IntN(8) == 0 && len(list) > 20 {
		return g.rare()
	}
	return list[g.r.IntN(len(list))]
}

var demoSyllables = strings.Fields(`ka lo mi ra te shu vin dor el an qua bre tis ol um pha gri zen ost ly`)

func (g *demoGen) rare() string {
	var s strings.Builder
	for n := 2 + g.r.IntN(3); n > 0; n-- {
		s.WriteString(demoSyllables[g.r.IntN(len(demoSyllables))])
	}
	return s.String()
}

func (g *demoGen) title() string {
	return "The " + strings.Title(g.pick(demoAdjs)) + " " + strings.Title(g.pick(demoNouns)) //nolint:staticcheck // ASCII words
}

func (g *demoGen) sentence() string {
	var s strings.Builder
	s.WriteString("The " + g.pick(demoAdjs) + " " + g.pick(demoNouns) + " " + g.pick(demoVerbs))
	for n := 3 + g.r.IntN(10); n > 0; n-- {
		switch g.r.IntN(4) {
		case 0:
			s.WriteString(" the " + g.pick(demoNouns))
		case 1:
			s.WriteString(" " + g.pick(demoAdjs))
		case 2:
			s.WriteString(" and " + g.pick(demoVerbs))
		default:
			s.WriteString(" by the " + g.pick(demoNouns))
		}
	}
	return s.String() + "."
}

// book writes about `words` words in chapters and paragraphs, with dialogue
// and facts stated early and recalled later (recallFacts).
func (g *demoGen) book(words int) string {
	var s strings.Builder
	s.WriteString(strings.ToUpper(g.title()) + "\n\n")
	chapter, n := 1, 0
	facts := g.newFacts()
	for n < words {
		if n == 0 || g.r.IntN(40) == 0 {
			fmt.Fprintf(&s, "CHAPTER %d\n\n", chapter)
			chapter++
		}
		for k := 2 + g.r.IntN(5); k > 0; k-- {
			st := g.sentence()
			switch g.r.IntN(10) {
			case 0, 1:
				st = fmt.Sprintf("\u201c%s\u201d said %s.", st, g.pick(demoNames))
			case 2:
				// Plain "X is Y" statements, so "is" alone never marks a fact.
				st = fmt.Sprintf("The %s is %s.", g.pick(demoNouns), g.pick(demoAdjs))
			}
			// Two chances per sentence: dense enough that copying is a
			// large share of what there is to learn.
			st = facts.next(n) + st
			if more := facts.next(n + strings.Count(st, " ") + 1); more != "" {
				st += " " + strings.TrimSpace(more)
			}
			s.WriteString(st + " ")
			n += strings.Count(st, " ") + 1
		}
		s.WriteString("\n\n")
	}
	return s.String()
}

// Recall structure: long documents state facts ("The code of the shared
// socket is 4821.") and ask for them again later with the same phrasing
// ("What is the code of the shared socket? The code of the shared socket is
// 4821."). Keys are reused
// across documents with new values, so the value can only come from the
// context: this is what teaches a small model to retrieve over a distance.
// Recall distances mix short gaps (inside a 256-token window) with long ones
// (up to a few thousand words), so longer training windows hold longer
// recalls, as in real books.
var (
	// Key words are whole tokens of the test tokenizer (trained on Go
	// source: "red box" is four pieces there), so a key is two tokens and a
	// toy model matches it with one step of attention.
	factColors  = strings.Fields(`atomic binary blank dynamic empty global local public static shared`)
	factObjects = strings.Fields(`cache buffer block channel archive device driver client socket ticket`)
	// phraseWords are the words of the repeated phrases ("Omar whispered
	// the words ..."): whole tokens drawn uniformly, so a repeat can only be
	// predicted by copying it (made-up syllable words are half predictable
	// from the syllable statistics, which delays copying in a small model).
	phraseWords = strings.Fields(`able about above accept access action active actual added address after again against allow along already also always amount another appear apply around array assert assign assume avoid back base basic batch become before begin behavior being below best better between bind branch break build built byte call cannot capacity care carry case cause certain chain change check child choose class clean clear clock close collect color column combine command comment commit common compare compile complete complex compute config connect constant contain content context continue control convert copy correct cost could count cover create current custom cycle data date dead debug decide declare default define delay delete depend depth design detail detect different direct disable display document does done double down drop dump during each edge edit effect either element else enable encode entire entry equal error even event every exact example except exchange exist expect export express extend extra fact fail false fast field file fill final find first flag float follow force format found frame free from full function future general given good graph group half handle happen hash have header heap help hold host image import include index inner input insert inside install instead into issue item join just keep kernel kind label large last later left length level library limit line link list live load lock long look loop lower machine main make many mark match mean member memory merge message method might mode model modify module more most move much must name need never next node normal note nothing notice number object offset only open option order other outer output over pack page pair panic parent parse part pass path pattern pick place point pointer pool port position power prefer prepare present print process produce program proper protect provide purpose push query queue quote race random range rather read real reason receive record refer region register release remote remove replace report request require reset resolve result return right root round rule safe same sample save scan scope search second section select send separate server service session setting share short should show side sign signal simple since single size skip slice small sort source space special split stack standard start state status step still stop store stream string struct success such suffix support sure switch symbol sync system table take target test text than that their them then there these third this those thread three through time timer token total trace track tree true type under unit until update upper usage used user valid value variable verify version visit wait walk want weak what when where which while whole wide will window with within without word work worker world would write written yield zero`)
)

// FactKeys are every fact key ("atomic cache", ...), in a fixed order.
var FactKeys = func() []string {
	var k []string
	for _, c := range factColors {
		for _, o := range factObjects {
			k = append(k, c+" "+o)
		}
	}
	return k
}()

// FactQuestionPrefix is FactQuestion up to the value: what a retrieval
// prompt ends with.
func FactQuestionPrefix(key string) string {
	return fmt.Sprintf("What is the code of the %s? The code of the %s is", key, key)
}

// FactStatement and FactQuestion are the recall phrasing shared by the
// corpus and the key-value retrieval eval (eval.PasskeyConfig task "kv").
func FactStatement(key, value string) string {
	return fmt.Sprintf("The code of the %s is %s.", key, value)
}

// FactQuestion is the question that recalls a fact, with the answer.
func FactQuestion(key, value string) string {
	return FactQuestionPrefix(key) + " " + value + "."
}

type openFact struct {
	key, recall string
	due         int // word count at which it is recalled
}

type facts struct {
	open []openFact
	next func(n int) string
}

// newFacts returns a fact stream for one document: next(n) is the text to
// put before the sentence at word n (new facts, due recalls, or nothing).
// Besides codes it repeats phrases of random words ("Omar whispered the words
// table merge stack."), a plain copy signal.
func (g *demoGen) newFacts() *facts {
	f := &facts{}
	// Words are ~2.35 tokens of the test tokenizer, so a 256-token window
	// holds ~105 words: in-window gaps run the whole window (the retrieval
	// eval at 256 asks up to ~240 tokens back; gaps of at most 65 words
	// left the far half untrained: kv 0% with the fact at the window start),
	// and a fifth reach up to 3,000 words for longer windows.
	gap := func() int {
		switch k := g.r.IntN(10); {
		case k < 4:
			return 5 + g.r.IntN(40)
		case k < 8:
			return 45 + g.r.IntN(60)
		}
		return int(105 * math.Exp(g.r.Float64()*math.Log(3000.0/105)))
	}
	f.next = func(n int) string {
		var out strings.Builder
		for i := 0; i < len(f.open); {
			if f.open[i].due <= n {
				out.WriteString(f.open[i].recall + " ")
				f.open = append(f.open[:i], f.open[i+1:]...)
				continue
			}
			i++
		}
		if len(f.open) >= 24 {
			return out.String()
		}
		switch g.r.IntN(8) {
		case 0, 1, 2, 3:
			key := FactKeys[g.r.IntN(len(FactKeys))]
			for _, o := range f.open {
				if o.key == key {
					return out.String()
				}
			}
			v := fmt.Sprint(1000 + g.r.IntN(9000))
			f.open = append(f.open, openFact{key: key, recall: FactQuestion(key, v), due: n + gap()})
			out.WriteString(FactStatement(key, v) + " ")
		case 4, 5, 6:
			name := demoNames[g.r.IntN(len(demoNames))]
			for _, o := range f.open {
				if o.key == name {
					return out.String()
				}
			}
			words := make([]string, 4+g.r.IntN(7))
			for i := range words {
				words[i] = phraseWords[g.r.IntN(len(phraseWords))]
			}
			phrase := strings.Join(words, " ")
			f.open = append(f.open, openFact{key: name, recall: fmt.Sprintf("Again %s whispered the words %s.", name, phrase), due: n + gap()})
			fmt.Fprintf(&out, "%s whispered the words %s. ", name, phrase)
		}
		return out.String()
	}
	return f
}

func (g *demoGen) code(lang string, lines int) string {
	var s strings.Builder
	n := 0
	facts := g.newFacts()
	if lang == "go" {
		s.WriteString("// Package demo is synthesised sample code.\npackage demo\n\nimport (\n\t\"fmt\"\n\t\"strings\"\n)\n\n")
		for n < lines {
			f := g.pick(demoVerbs) + strings.Title(g.pick(demoNouns)) //nolint:staticcheck
			if c := facts.next(n); c != "" {
				fmt.Fprintf(&s, "// %s\n", strings.TrimSpace(c))
			}
			fmt.Fprintf(&s, "// %s %s the %s %s.\nfunc %s(items []string, limit int) (int, error) {\n", f, g.pick(demoVerbs), g.pick(demoAdjs), g.pick(demoNouns), f)
			fmt.Fprintf(&s, "\tcount := 0\n\tfor i, item := range items {\n\t\tif i >= limit {\n\t\t\treturn count, fmt.Errorf(\"%s: limit %%d reached\", limit)\n\t\t}\n", f)
			fmt.Fprintf(&s, "\t\tif strings.Contains(item, %q) {\n\t\t\tcount += len(item) %% %d\n\t\t}\n\t}\n\treturn count, nil\n}\n\n", g.pick(demoNouns), 3+g.r.IntN(17))
			n += 14
		}
	} else {
		s.WriteString("\"\"\"Synthesised sample module.\"\"\"\nimport math\n\n\n")
		for n < lines {
			f := g.pick(demoVerbs) + "_" + g.pick(demoNouns)
			if c := facts.next(n); c != "" {
				fmt.Fprintf(&s, "# %s\n", strings.TrimSpace(c))
			}
			fmt.Fprintf(&s, "def %s(values, scale=%d):\n    \"\"\"Return the %s %s of values.\"\"\"\n", f, 1+g.r.IntN(9), g.pick(demoAdjs), g.pick(demoNouns))
			fmt.Fprintf(&s, "    total = 0\n    for i, v in enumerate(values):\n        if v %% %d == 0:\n            total += math.sqrt(abs(v)) * scale\n        else:\n            total -= i\n    return total\n\n\n", 2+g.r.IntN(7))
			n += 11
		}
	}
	return s.String()
}

func (g *demoGen) edu(words int) string {
	topic := strings.ReplaceAll(g.pick(demoTopics), "_", " ")
	var s strings.Builder
	fmt.Fprintf(&s, "Understanding %s\n\n", topic)
	n := 0
	for n < words {
		st := []string{
			fmt.Sprintf("Students often ask why %s matters for the %s %s.", topic, g.pick(demoAdjs), g.pick(demoNouns)),
			fmt.Sprintf("In simple terms, %s describes how a %s changes when the %s is %s.", topic, g.pick(demoNouns), g.pick(demoNouns), g.pick(demoAdjs)),
			fmt.Sprintf("A useful classroom activity is to measure the %s %d times and record the results in a table.", g.pick(demoNouns), 3+g.r.IntN(8)),
			fmt.Sprintf("Key idea %d: every %s depends on the %s around it.", 1+g.r.IntN(5), g.pick(demoNouns), g.pick(demoNouns)),
			g.sentence(),
		}[g.r.IntN(5)]
		s.WriteString(st + " ")
		n += strings.Count(st, " ") + 1
		if g.r.IntN(6) == 0 {
			s.WriteString("\n\n")
		}
	}
	return s.String()
}

func (g *demoGen) web(words int) string {
	var s strings.Builder
	fmt.Fprintf(&s, "%s | Example Blog\nHome > Posts > %s\n\n", g.title(), g.pick(demoNouns))
	n := 0
	for n < words {
		st := g.sentence()
		if g.r.IntN(8) == 0 {
			st = fmt.Sprintf("- %d %s %ss for $%d.%02d", 1+g.r.IntN(9), g.pick(demoAdjs), g.pick(demoItems), g.r.IntN(50), g.r.IntN(100))
		}
		s.WriteString(st + "\n")
		n += strings.Count(st, " ") + 1
	}
	s.WriteString("\nPosted in Uncategorized | 3 Comments\n")
	return s.String()
}

// mathPage writes k GSM8k-style problems, each with a worked solution and
// a final "#### N" answer line.
func (g *demoGen) mathPage(k int) string {
	var s strings.Builder
	s.WriteString("Math Practice: Word Problems\n\n")
	for i := 1; i <= k; i++ {
		name := g.pick(demoNames)
		item := g.pick(demoItems)
		fmt.Fprintf(&s, "Problem %d. ", i)
		switch g.r.IntN(4) {
		case 0:
			a := 2 * (10 + g.r.IntN(40))
			fmt.Fprintf(&s, "%s sold %d %ss in April, and then she sold half as many in May. How many %ss did %s sell altogether in April and May?\n", name, a, item, item, name)
			fmt.Fprintf(&s, "Solution: In May %s sold %d / 2 = %d %ss.\nAltogether she sold %d + %d = %d %ss.\n#### %d\n\n", name, a, a/2, item, a, a/2, a+a/2, item, a+a/2)
		case 1:
			rate, min := 6+g.r.IntN(15), 10*(1+g.r.IntN(9))
			cents := rate * min * 100 / 60
			fmt.Fprintf(&s, "%s earns $%d an hour for babysitting. Yesterday, she did %d minutes of babysitting. How much did she earn?\n", name, rate, min)
			fmt.Fprintf(&s, "Solution: %s earns $%d / 60 per minute.\nFor %d minutes she earned %d * %d / 60 = $%d.%02d.\n#### %d.%02d\n\n", name, rate, min, rate, min, cents/100, cents%100, cents/100, cents%100)
		case 2:
			n, p := 2+g.r.IntN(8), 2+g.r.IntN(12)
			paid := (n*p/10 + 1) * 10
			fmt.Fprintf(&s, "%s buys %d %ss at $%d each and pays with $%d. How much change does %s get?\n", name, n, item, p, paid, name)
			fmt.Fprintf(&s, "Solution: The %ss cost %d * $%d = $%d.\nThe change is $%d - $%d = $%d.\n#### %d\n\n", item, n, p, n*p, paid, n*p, paid-n*p, paid-n*p)
		default:
			speed, hours := 30+g.r.IntN(40), 2+g.r.IntN(5)
			back := speed + 10
			fmt.Fprintf(&s, "A train travels at %d km/h for %d hours, then returns at %d km/h. How long does the return trip take, in minutes?\n", speed, hours, back)
			d := speed * hours
			fmt.Fprintf(&s, "Solution: The distance is %d * %d = %d km.\nThe return takes %d / %d hours = %d * 60 / %d = %d minutes (rounded down).\n#### %d\n\n", speed, hours, d, d, back, d, back, d*60/back, d*60/back)
		}
	}
	s.WriteString("Tip: write down every step; check units at the end. $\\frac{a}{b} \\cdot b = a$.\n")
	return s.String()
}

// hashID makes a stable id from fields (hex SHA-256 of the fields joined by
// NUL, 128 bits): the same rule the readers use for derived ids, so demo ids
// look like real derived ones.
func hashID(fields ...string) string {
	h := sha256.New()
	for i, f := range fields {
		if i > 0 {
			h.Write([]byte{0})
		}
		h.Write([]byte(f))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
