package tokenizer

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
)

// EncodeJSONL encodes each line's "text" in batches and writes one JSON line
// per input line, in order: {"ids":[...]}, or {"count":N} when count. name
// labels errors (file and line). It returns the number of documents.
func EncodeJSONL(tok *Tokenizer, r io.Reader, w io.Writer, name string, addEOS, count bool, workers int) (int, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	const batchBytes = 16 << 20
	var texts []string
	size, line, done := 0, 0, 0
	var buf []byte
	flush := func() error {
		if len(texts) == 0 {
			return nil
		}
		res := tok.EncodeBatch(texts, addEOS, workers)
		for _, ids := range res {
			buf = buf[:0]
			if count {
				buf = append(buf, `{"count":`...)
				buf = strconv.AppendInt(buf, int64(len(ids)), 10)
			} else {
				buf = append(buf, `{"ids":[`...)
				for k, id := range ids {
					if k > 0 {
						buf = append(buf, ',')
					}
					buf = strconv.AppendUint(buf, uint64(id), 10)
				}
				buf = append(buf, ']')
			}
			buf = append(buf, "}\n"...)
			if _, err := w.Write(buf); err != nil {
				return err
			}
		}
		done += len(texts)
		texts, size = texts[:0], 0
		return nil
	}
	for {
		raw, err := br.ReadBytes('\n')
		if len(raw) > 0 {
			line++
			var doc struct {
				Text *string `json:"text"`
			}
			if jerr := json.Unmarshal(raw, &doc); jerr != nil {
				return done, fmt.Errorf("%s line %d: bad JSON: %v", name, line, jerr)
			}
			if doc.Text == nil {
				return done, fmt.Errorf("%s line %d: no \"text\" string field", name, line)
			}
			texts = append(texts, *doc.Text)
			size += len(*doc.Text)
			if size >= batchBytes {
				if err := flush(); err != nil {
					return done, err
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return done, fmt.Errorf("%s line %d: %w", name, line+1, err)
		}
	}
	return done, flush()
}
