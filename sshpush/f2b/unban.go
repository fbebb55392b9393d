package f2b

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"strconv"
)

// Unban lifts the ban of addr in jail, or in every jail when jail is "",
// and reports whether it was banned there. An address that is not banned
// is not an error: unbanning is idempotent.
func (c *Client) Unban(ctx context.Context, jail string, addr netip.Addr) (bool, error) {
	if !addr.IsValid() || addr.Zone() != "" {
		return false, errors.New("f2b: invalid address")
	}
	args := []string{"unban", addr.String()}
	if jail != "" {
		if !ValidJail(jail) {
			return false, errors.New("f2b: invalid jail name")
		}
		args = []string{"set", jail, "unbanip", addr.String()}
	}
	out, err := c.server(ctx, args...)
	if err != nil {
		return false, err
	}
	n, err := strconv.Atoi(string(bytes.TrimSpace(out)))
	if err != nil {
		return false, &Error{Args: args, Err: errors.New("unexpected answer")}
	}
	return n > 0, nil
}
