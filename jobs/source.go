package jobs

import (
	"context"
	"fmt"

	"github.com/backstop/backstop/jobs/pg"
	"github.com/backstop/backstop/store"
)

// RegisterSource checks a PostgreSQL database (connection, privileges, settings) and records
// it as a backup source. A failed check returns the *pg.CheckError naming the field at fault,
// and nothing is written.
func RegisterSource(ctx context.Context, st *store.Store, name, dsn string) (store.Source, error) {
	if err := store.ValidateSourceName(name); err != nil {
		return store.Source{}, err
	}
	if _, err := st.SourceByName(ctx, name); err == nil {
		return store.Source{}, &store.ValidationError{Field: "name", Message: fmt.Sprintf("a source named %q already exists", name)}
	}
	info, err := pg.CheckSource(ctx, dsn)
	if err != nil {
		return store.Source{}, err
	}
	checksums := info.DataChecksums
	src, err := st.CreateSource(ctx, store.SourceParams{
		Name:             name,
		DSN:              dsn,
		SystemIdentifier: info.SystemID,
		PGVersion:        info.VersionNum,
		Timeline:         int64(info.Timeline),
		DataChecksums:    &checksums,
		Dirs:             info.Dirs(),
	})
	if err != nil {
		return store.Source{}, fmt.Errorf("register source: %w", err)
	}
	return src, nil
}
