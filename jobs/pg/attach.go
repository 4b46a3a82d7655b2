package pg

import (
	"fmt"
	"path/filepath"
)

// DataDirServer returns a handle on the server of an existing data directory that
// StartDataDir started earlier (perhaps in another process), to stop it or ask whether it
// runs; to start it again, use StartDataDir.
func DataDirServer(bin Binaries, dataDir string, port int) (*Cluster, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Errorf("data dir server: %w", err)
	}
	u, err := serverUser()
	if err != nil {
		return nil, fmt.Errorf("data dir server: %w", err)
	}
	return &Cluster{bin: bin, user: u, dataDir: abs, port: port, superuser: "postgres", extraOpts: true}, nil
}
