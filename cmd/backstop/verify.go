package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dustin/go-humanize"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/store"
)

// errFindings makes verify exit non-zero when it found something, after printing it.
var errFindings = errors.New("verification found problems")

func (c *cli) verify(ctx context.Context, args []string) error {
	fs := c.flags("verify", "verify --source NAME [--deep [--rehash]] [--json]")
	name := fs.String("source", "", "the source's name")
	deep := fs.Bool("deep", false, "read every pack of the repository, not only what is new and a rotating share")
	rehash := fs.Bool("rehash", false, "with --deep: decompress and rehash every blob, also in the packs proven before")
	h, src, err := c.sourceFlag(ctx, fs, name, args)
	if err != nil {
		return err
	}
	defer h.Close()
	svc, actor := c.cliService(h)
	job, err := svc.StartVerify(ctx, actor, src.ID, *deep, *rehash)
	var res jobs.VerifyResult
	if job.Result != nil {
		if jerr := json.Unmarshal(job.Result, &res); jerr != nil {
			return errors.Join(err, jerr)
		}
	}
	if err != nil && res.RunID == 0 {
		return fmt.Errorf("verify %s: %w", src.Name, err)
	}
	if c.json {
		if res.Findings == nil {
			res.Findings = []store.VerifyFinding{}
		}
		if perr := c.printResult(res); perr != nil {
			return perr
		}
	} else {
		kind := "Routine"
		if res.Deep {
			kind = "Deep"
		}
		fmt.Fprintf(c.stdout, "%s verification of %s (run %d): read %d of %d packs (%s; %d blobs authenticated, %d of them also rehashed): %s\n",
			kind, src.Name, res.RunID, res.PacksChecked, res.PacksTotal, humanize.IBytes(uint64(res.BytesRead)), res.BlobsChecked, res.BlobsRehashed, res.State)
		for _, f := range res.Findings {
			fmt.Fprintf(c.stdout, "  %s\n", jobs.DescribeFinding(f))
		}
	}
	switch {
	case err != nil:
		return fmt.Errorf("verify %s: %w", src.Name, err)
	case len(res.Findings) > 0:
		return fmt.Errorf("%w: %d findings (the damaged copies are marked bad; the next backup of %s stores good ones)", errFindings, len(res.Findings), src.Name)
	}
	return nil
}
