package pg

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
)

// ServerManifest is the backup manifest (backup_manifest) that the server
// sends at the end of a base backup. It lists every file of the backup
// except the WAL segments.
type ServerManifest struct {
	// Version is the manifest format version (1 up to PostgreSQL 16, 2 from 17).
	Version int
	// SystemIdentifier is the cluster's system identifier, in version 2 only.
	SystemIdentifier uint64
	// Files lists the files, in the server's order.
	Files []ManifestFile
	// WALRanges are the WAL ranges needed to make the backup consistent.
	WALRanges []WALRange
	// Checksum is the SHA-256 of the manifest, as hex, already verified.
	Checksum string
}

// ManifestFile is one file listed in a backup manifest.
type ManifestFile struct {
	// Path is relative to the data directory (decoded when the manifest
	// hex-encodes it because it is not valid UTF-8).
	Path string
	// Size is the file's length in bytes.
	Size int64
	// LastModified is the modification time, to the second.
	LastModified time.Time
	// ChecksumAlgorithm is "CRC32C", "SHA256", ..., or "" (NONE).
	ChecksumAlgorithm string
	// Checksum is the file's checksum, as hex.
	Checksum string
}

// WALRange is a range of WAL on one timeline that a backup needs.
type WALRange struct {
	// Timeline is the timeline the range is on.
	Timeline int32
	// StartLSN and EndLSN bound the range.
	StartLSN pglogrepl.LSN
	EndLSN   pglogrepl.LSN
}

// maxManifestSize bounds how much ParseServerManifest reads (the manifest
// takes about 200 bytes per file).
const maxManifestSize = 1 << 30

// manifestTimeLayout is how the server writes Last-Modified.
const manifestTimeLayout = "2006-01-02 15:04:05 MST"

// ParseServerManifest reads and checks a backup manifest sent by the
// server: its own SHA-256 checksum, the paths (clean, relative, unique),
// sizes, checksums and WAL ranges.
func ParseServerManifest(r io.Reader) (ServerManifest, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxManifestSize+1))
	if err != nil {
		return ServerManifest{}, fmt.Errorf("parse manifest: %w", err)
	}
	if len(data) > maxManifestSize {
		return ServerManifest{}, fmt.Errorf("parse manifest: larger than %d bytes", maxManifestSize)
	}

	var raw struct {
		Version  *int   `json:"PostgreSQL-Backup-Manifest-Version"`
		SystemID uint64 `json:"System-Identifier"`
		Files    []struct {
			Path              *string `json:"Path"`
			EncodedPath       *string `json:"Encoded-Path"`
			Size              *int64  `json:"Size"`
			LastModified      string  `json:"Last-Modified"`
			ChecksumAlgorithm string  `json:"Checksum-Algorithm"`
			Checksum          string  `json:"Checksum"`
		} `json:"Files"`
		WALRanges []struct {
			Timeline *int32 `json:"Timeline"`
			StartLSN string `json:"Start-LSN"`
			EndLSN   string `json:"End-LSN"`
		} `json:"WAL-Ranges"`
		Checksum string `json:"Manifest-Checksum"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return ServerManifest{}, fmt.Errorf("parse manifest: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return ServerManifest{}, errors.New("parse manifest: data after the JSON object")
	}
	if raw.Version == nil || (*raw.Version != 1 && *raw.Version != 2) {
		return ServerManifest{}, errors.New("parse manifest: missing or unsupported PostgreSQL-Backup-Manifest-Version")
	}
	if err := checkManifestChecksum(data, raw.Checksum); err != nil {
		return ServerManifest{}, fmt.Errorf("parse manifest: %w", err)
	}

	m := ServerManifest{
		Version:          *raw.Version,
		SystemIdentifier: raw.SystemID,
		Files:            make([]ManifestFile, 0, len(raw.Files)),
		Checksum:         raw.Checksum,
	}
	seen := make(map[string]bool, len(raw.Files))
	for i, f := range raw.Files {
		var p string
		switch {
		case f.Path != nil && f.EncodedPath == nil:
			p = *f.Path
		case f.EncodedPath != nil && f.Path == nil:
			b, err := hex.DecodeString(*f.EncodedPath)
			if err != nil {
				return ServerManifest{}, fmt.Errorf("parse manifest: file %d: Encoded-Path: %w", i, err)
			}
			p = string(b)
		default:
			return ServerManifest{}, fmt.Errorf("parse manifest: file %d: want exactly one of Path and Encoded-Path", i)
		}
		if err := checkRelPath(p); err != nil {
			return ServerManifest{}, fmt.Errorf("parse manifest: file %q: %w", p, err)
		}
		if seen[p] {
			return ServerManifest{}, fmt.Errorf("parse manifest: file %q listed twice", p)
		}
		seen[p] = true
		if f.Size == nil || *f.Size < 0 {
			return ServerManifest{}, fmt.Errorf("parse manifest: file %q: missing or negative Size", p)
		}
		mf := ManifestFile{Path: p, Size: *f.Size}
		if f.LastModified != "" {
			t, err := time.Parse(manifestTimeLayout, f.LastModified)
			if err != nil {
				return ServerManifest{}, fmt.Errorf("parse manifest: file %q: Last-Modified: %w", p, err)
			}
			mf.LastModified = t.UTC()
		}
		switch alg := strings.ToUpper(f.ChecksumAlgorithm); alg {
		case "", "NONE":
			if f.Checksum != "" {
				return ServerManifest{}, fmt.Errorf("parse manifest: file %q: checksum without algorithm", p)
			}
		case "CRC32C", "SHA224", "SHA256", "SHA384", "SHA512":
			if _, err := hex.DecodeString(f.Checksum); err != nil || f.Checksum == "" {
				return ServerManifest{}, fmt.Errorf("parse manifest: file %q: invalid %s checksum %q", p, alg, f.Checksum)
			}
			mf.ChecksumAlgorithm, mf.Checksum = alg, strings.ToLower(f.Checksum)
		default:
			return ServerManifest{}, fmt.Errorf("parse manifest: file %q: unknown checksum algorithm %q", p, f.ChecksumAlgorithm)
		}
		m.Files = append(m.Files, mf)
	}
	for i, w := range raw.WALRanges {
		if w.Timeline == nil || *w.Timeline <= 0 {
			return ServerManifest{}, fmt.Errorf("parse manifest: WAL range %d: missing or invalid Timeline", i)
		}
		start, err := pglogrepl.ParseLSN(w.StartLSN)
		if err != nil {
			return ServerManifest{}, fmt.Errorf("parse manifest: WAL range %d: Start-LSN: %w", i, err)
		}
		end, err := pglogrepl.ParseLSN(w.EndLSN)
		if err != nil {
			return ServerManifest{}, fmt.Errorf("parse manifest: WAL range %d: End-LSN: %w", i, err)
		}
		if end < start {
			return ServerManifest{}, fmt.Errorf("parse manifest: WAL range %d: End-LSN %s before Start-LSN %s", i, end, start)
		}
		m.WALRanges = append(m.WALRanges, WALRange{Timeline: *w.Timeline, StartLSN: start, EndLSN: end})
	}
	if len(m.WALRanges) == 0 {
		return ServerManifest{}, errors.New("parse manifest: no WAL-Ranges")
	}
	return m, nil
}

// checkManifestChecksum verifies the manifest's own checksum: the SHA-256
// of everything before its last line, which holds "Manifest-Checksum".
func checkManifestChecksum(data []byte, want string) error {
	if len(want) != sha256.Size*2 {
		return errors.New("missing or malformed Manifest-Checksum")
	}
	body := bytes.TrimRight(data, "\n")
	nl := bytes.LastIndexByte(body, '\n')
	if nl < 0 || !bytes.HasPrefix(body[nl+1:], []byte(`"Manifest-Checksum"`)) {
		return errors.New(`"Manifest-Checksum" is not on the last line`)
	}
	sum := sha256.Sum256(body[:nl+1])
	if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, want) {
		return fmt.Errorf("manifest checksum mismatch: computed %s, manifest says %s", got, want)
	}
	return nil
}
