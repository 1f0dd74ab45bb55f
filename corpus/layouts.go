package corpus

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
)

// Row types in the real sources' layouts (shared/reference/data-sources.md).
// They are used to write the demo corpus and test files; readers never use
// them (they project columns by name, so extra or reordered columns in the
// real dumps do not matter). Pointers are nullable columns.

// StackRow is one row of The Stack v1 dedup.
type StackRow struct {
	Hexsha                 *string  `parquet:"hexsha,optional"`
	Size                   *int64   `parquet:"size,optional"`
	Ext                    *string  `parquet:"ext,optional"`
	Lang                   *string  `parquet:"lang,optional"`
	MaxStarsRepoPath       *string  `parquet:"max_stars_repo_path,optional"`
	MaxStarsRepoName       *string  `parquet:"max_stars_repo_name,optional"`
	MaxStarsRepoHeadHexsha *string  `parquet:"max_stars_repo_head_hexsha,optional"`
	MaxStarsRepoLicenses   []string `parquet:"max_stars_repo_licenses,list"`
	MaxStarsCount          *int64   `parquet:"max_stars_count,optional"`
	Content                *string  `parquet:"content,optional"`
	AvgLineLength          *float64 `parquet:"avg_line_length,optional"`
	MaxLineLength          *int64   `parquet:"max_line_length,optional"`
	AlphanumFraction       *float64 `parquet:"alphanum_fraction,optional"`
}

// FineWebEduRow is one row of FineWeb-Edu.
type FineWebEduRow struct {
	Text          *string  `parquet:"text,optional"`
	ID            *string  `parquet:"id,optional"`
	Dump          *string  `parquet:"dump,optional"`
	URL           *string  `parquet:"url,optional"`
	Date          *string  `parquet:"date,optional"`
	FilePath      *string  `parquet:"file_path,optional"`
	Language      *string  `parquet:"language,optional"`
	LanguageScore *float64 `parquet:"language_score,optional"`
	TokenCount    *int64   `parquet:"token_count,optional"`
	Score         *float64 `parquet:"score,optional"`
	IntScore      *int64   `parquet:"int_score,optional"`
}

// FineMathRow is one row of FineMath 3+/4+ (metadata is a JSON string).
type FineMathRow struct {
	URL              *string  `parquet:"url,optional"`
	FetchTime        *int64   `parquet:"fetch_time,optional"`
	ContentMimeType  *string  `parquet:"content_mime_type,optional"`
	WarcFilename     *string  `parquet:"warc_filename,optional"`
	WarcRecordOffset *int32   `parquet:"warc_record_offset,optional"`
	WarcRecordLength *int32   `parquet:"warc_record_length,optional"`
	Text             *string  `parquet:"text,optional"`
	TokenCount       *int32   `parquet:"token_count,optional"`
	CharCount        *int32   `parquet:"char_count,optional"`
	Metadata         *string  `parquet:"metadata,optional"`
	Score            *float64 `parquet:"score,optional"`
	IntScore         *int64   `parquet:"int_score,optional"`
	Crawl            *string  `parquet:"crawl,optional"`
	SnapshotType     *string  `parquet:"snapshot_type,optional"`
	Language         *string  `parquet:"language,optional"`
	LanguageScore    *float64 `parquet:"language_score,optional"`
}

// WriteParquet writes rows as a zstd-compressed parquet file with at most
// rowsPerGroup rows per row group and no page statistics: parquet-mr and
// parquet-rs leave out min/max over 4 KB, and parquet-go's would hold whole
// documents (43% of a FineWeb-Edu file at scale 150).
func WriteParquet[T any](w io.Writer, rows []T, rowsPerGroup int64) error {
	pw := parquet.NewGenericWriter[T](w, parquet.Compression(&parquet.Zstd), parquet.MaxRowsPerRowGroup(rowsPerGroup), parquet.DataPageStatistics(false))
	for len(rows) > 0 {
		k := min(int64(len(rows)), rowsPerGroup)
		if _, err := pw.Write(rows[:k]); err != nil {
			return fmt.Errorf("write parquet: %w", err)
		}
		if err := pw.Flush(); err != nil {
			return fmt.Errorf("flush parquet: %w", err)
		}
		rows = rows[k:]
	}
	return pw.Close()
}

// JSONLine renders v as one JSON line (with newline). Raw lines (malformed
// records in tests and the demo) are passed as []byte and written verbatim.
func JSONLine(v any) []byte {
	if b, ok := v.([]byte); ok {
		return append(append([]byte{}, b...), '\n')
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}

// WriteGzipMembers writes each group of lines as its own gzip member, so a
// file with several groups is a multi-member gzip stream like Dolma's.
func WriteGzipMembers(w io.Writer, groups ...[][]byte) error {
	for _, g := range groups {
		zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
		if err != nil {
			return err
		}
		for _, l := range g {
			if _, err := zw.Write(l); err != nil {
				return err
			}
		}
		if err := zw.Close(); err != nil {
			return err
		}
	}
	return nil
}

// WriteZstdFrames writes each group of lines as its own zstd frame.
func WriteZstdFrames(w io.Writer, groups ...[][]byte) error {
	for _, g := range groups {
		zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
		if err != nil {
			return err
		}
		for _, l := range g {
			if _, err := zw.Write(l); err != nil {
				return err
			}
		}
		if err := zw.Close(); err != nil {
			return err
		}
	}
	return nil
}
