package f2b

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Unban lifts the ban of addr in the running jail, or in every jail when
// jail is "" (fail2ban-client unban ADDR; otherwise set JAIL unbanip ADDR).
// It reports whether addr was banned there: an address that was not banned
// is no error, so that the same unban may run any number of times.
//
// Only the address's canonical form reaches fail2ban-client, and only a
// jail name ValidJail accepts that does not start with '-'; an address with a zone, or not valid, is
// refused here.
func (c *Client) Unban(ctx context.Context, jail string, addr netip.Addr) (bool, error) {
	addr = addr.Unmap()
	if !addr.IsValid() || addr.Zone() != "" {
		return false, errors.New("f2b: unban: not a plain IP address")
	}
	args := []string{"unban", addr.String()}
	if jail != "" {
		// No jail of fail2ban's starts with '-'; refusing it keeps a
		// name from ever reading as an option.
		if !ValidJail(jail) || jail[0] == '-' {
			return false, fmt.Errorf("f2b: invalid jail name")
		}
		args = []string{"set", jail, "unbanip", addr.String()}
	}
	out, err := c.server(ctx, args...)
	if err != nil {
		return false, err
	}
	n, err := ParseCount(out)
	if err != nil {
		return false, &Error{Args: args, Err: err}
	}
	return n > 0, nil
}

// ParseCount reads the answer of 'unban' and 'set JAIL unbanip': how many
// bans were lifted, a decimal number alone on its line.
func ParseCount(out []byte) (int, error) {
	s := strings.TrimSpace(string(out))
	if len(s) == 0 || len(s) > 9 {
		return 0, errors.New("unexpected answer")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, errors.New("unexpected answer")
	}
	return n, nil
}
