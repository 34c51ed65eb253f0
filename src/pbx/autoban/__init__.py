"""AutoBan: bans SIP attackers seen in Asterisk's security events, with nftables, for IPv4 and IPv6."""
