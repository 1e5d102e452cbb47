"""Vendor token formats with a fixed marker, written as data: a literal prefix (or suffix) and
the random parts around it.

:mod:`polyadapt.governance.secrets` holds the formats that need their own check (Slack ids,
JWT segments, PEM blocks, ...); the formats here are all of one kind, a marker the vendor puts
in every token plus parts drawn from a known alphabet at a known length, so each is one
:class:`TokenFormat` and its regex and value check are built from it: the token matches when
each part has its alphabet and length and the token does not continue on either side; it is
reported when its random parts, joined, look random (no placeholder, run or sequence, and the
format's entropy floor). The list follows the families of gitleaks' rule set (AI providers,
CI/CD, package registries, observability, payments, infrastructure); tests generate a token of
every format from the same data and check it is found in assignments, JSON and prose, and that
a placeholder body (``xxxx...``) is not.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ALPHABETS", "FORMATS", "Part", "TokenFormat"]

#: The alphabets random parts are drawn from, as regex character-class bodies.
ALPHABETS = {
    "alnum": "A-Za-z0-9",
    "lower_alnum": "a-z0-9",
    "upper_alnum": "A-Z0-9",
    "hex": "a-f0-9",
    "any_hex": "A-Fa-f0-9",
    "digits": "0-9",
    "url": "A-Za-z0-9_-",  # base64url
    "url_eq": "A-Za-z0-9_=-",
    "url_dot": "A-Za-z0-9_.=-",
    "b64": "A-Za-z0-9+/",
    "b64_url": "A-Za-z0-9+/_=-",
    "bech32_upper": "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L",
    "pad": "=",  # base64 padding
}


@dataclass(frozen=True)
class Part:
    """A random run: ``low`` to ``high`` characters of the named :data:`ALPHABETS` entry."""

    alphabet: str
    low: int
    high: int | None = None  # None: exactly ``low``

    def regex(self) -> str:
        high = self.low if self.high is None else self.high
        count = f"{{{self.low}}}" if high == self.low else f"{{{self.low},{high}}}"
        return f"([{ALPHABETS[self.alphabet]}]{count})"


@dataclass(frozen=True)
class TokenFormat:
    """One vendor format: ``prefixes`` (any one opens the token; empty when a literal inside
    ``parts`` is the marker), then ``parts``: :class:`Part` runs and literal strings.

    ``needles`` gate the rule (a substring every token holds; the prefixes by default);
    ``min_entropy`` is the floor, in bits per character, for the joined random parts.
    """

    name: str
    prefixes: tuple[str, ...]
    parts: tuple[Part | str, ...]
    min_entropy: float = 2.0
    needles: tuple[str, ...] = ()

    def gate_needles(self) -> tuple[str, ...]:
        """The substrings the secret scanner tests before running this format's regex."""
        return self.needles or self.prefixes

    def pattern(self) -> re.Pattern[str]:
        """The format as a regex: one group per random part, no token character on either side."""
        body = "".join(re.escape(part) if isinstance(part, str) else part.regex() for part in self.parts)
        if self.prefixes:
            # opening with the literal prefix lets the regex engine search for it; the
            # look-behind then rejects a prefix glued to a longer word (same as ``\b`` before it)
            alternatives = "|".join(re.escape(p) for p in sorted(self.prefixes, key=len, reverse=True))
            head = f"(?:{alternatives})"
            start = rf"{head}(?<!\w{head})" if len(self.prefixes) == 1 else rf"(?<![\w]){head}"
        else:
            start = r"(?<![A-Za-z0-9_])"
        return re.compile(start + body + r"(?![A-Za-z0-9_])")

    def random_parts(self, value: str, pattern: re.Pattern[str]) -> str:
        """The random parts of a matched ``value``, joined (what the randomness check reads)."""
        m = pattern.fullmatch(value)
        return "".join(g for g in m.groups() if g) if m else value


def P(alphabet: str, low: int, high: int | None = None) -> Part:  # noqa: N802 (reads as a table)
    """Shorthand for :class:`Part` in the table below."""
    return Part(alphabet, low, high)


#: The formats. Lengths are the vendors' documented or observed token lengths.
FORMATS: tuple[TokenFormat, ...] = (
    # AI and ML platforms
    TokenFormat("perplexity", ("pplx-",), (P("alnum", 48),)),
    TokenFormat("xai", ("xai-",), (P("alnum", 80),)),
    TokenFormat("groq", ("gsk_",), (P("alnum", 52),)),
    TokenFormat("replicate", ("r8_",), (P("alnum", 37),)),
    TokenFormat("langsmith", ("lsv2_pt_", "lsv2_sk_"), (P("hex", 32), "_", P("hex", 10))),
    TokenFormat("pinecone", ("pcsk_",), (P("url", 60, 120),)),
    TokenFormat("aws-bedrock", ("ABSK",), (P("b64", 109, 269), P("pad", 0, 2)), 3.0),
    # source hosting, CI/CD, developer tools
    TokenFormat("atlassian", ("ATATT3",), (P("url_eq", 186),), 3.0),
    TokenFormat("bitbucket-app-password", ("ATBB",), (P("alnum", 32),), 3.0),
    TokenFormat("buildkite", ("bkua_",), (P("hex", 40),)),
    TokenFormat("circleci", ("CCIPAT_",), (P("alnum", 22), "_", P("hex", 40))),
    TokenFormat("docker-hub", ("dckr_pat_", "dckr_oat_"), (P("url", 27),)),
    TokenFormat("figma", ("figd_",), (P("url", 40),)),
    TokenFormat("sourcegraph", ("sgp_",), (P("hex", 40),)),
    TokenFormat("sourcegraph-instance", ("sgp_",), (P("hex", 16), "_", P("hex", 40))),
    TokenFormat("linear", ("lin_api_",), (P("alnum", 40),)),
    TokenFormat("postman", ("PMAK-",), (P("hex", 24), "-", P("hex", 34))),
    TokenFormat("readme", ("rdme_",), (P("lower_alnum", 70),)),
    TokenFormat("typeform", ("tfp_",), (P("url_dot", 59),)),
    TokenFormat("contentful", ("CFPAT-",), (P("url", 43),)),
    TokenFormat("harness", ("pat.", "sat."), (P("url", 22), ".", P("alnum", 24), ".", P("alnum", 20))),
    TokenFormat("octopus-deploy", ("API-",), (P("upper_alnum", 26),), 3.0),
    TokenFormat("infracost", ("ico-",), (P("alnum", 32),)),
    TokenFormat("adobe-client-secret", ("p8e-",), (P("alnum", 32),)),
    TokenFormat("frameio", ("fio-u-",), (P("url_eq", 64),)),
    # package registries
    TokenFormat("rubygems", ("rubygems_",), (P("hex", 48),)),
    TokenFormat("nuget", ("oy2",), (P("lower_alnum", 43),), 3.0),
    TokenFormat("clojars", ("CLOJARS_",), (P("alnum", 60),)),
    TokenFormat("artifactory-api-key", ("AKCp",), (P("alnum", 69),), 3.0),
    TokenFormat("artifactory-reference", ("cmVmd",), (P("alnum", 59),), 3.0),
    # infrastructure and cloud platforms
    TokenFormat("hashicorp-vault-service", ("hvs.",), (P("url", 90, 120),), 3.0),
    TokenFormat("hashicorp-vault-batch", ("hvb.",), (P("url", 138, 300),), 3.0),
    TokenFormat(
        "terraform-cloud", (), (P("lower_alnum", 14), ".atlasv1.", P("url_eq", 60, 70)), needles=(".atlasv1.",)
    ),
    TokenFormat("pulumi", ("pul-",), (P("hex", 40),)),
    TokenFormat("doppler", ("dp.pt.", "dp.sa.", "dp.ct.", "dp.scim.", "dp.audit."), (P("alnum", 40, 44),)),
    TokenFormat("flyio", ("fo1_",), (P("url", 43),)),
    TokenFormat("flyio-macaroon", ("fm1r_", "fm1a_", "fm2_"), (P("b64", 100, 2000), P("pad", 0, 3)), 3.0),
    TokenFormat("planetscale", ("pscale_tkn_", "pscale_pw_", "pscale_oauth_"), (P("url_dot", 32, 64),)),
    TokenFormat("scalingo", ("tk-us-",), (P("url", 48),)),
    TokenFormat("supabase", ("sbp_",), (P("hex", 40),)),
    TokenFormat("supabase-secret", ("sb_secret_",), (P("url", 31),)),
    TokenFormat("netlify", ("nfp_",), (P("alnum", 36),)),
    TokenFormat("render", ("rnd_",), (P("alnum", 32),)),
    TokenFormat(
        "tailscale", ("tskey-api-", "tskey-auth-", "tskey-client-"), (P("alnum", 6, 20), "-", P("alnum", 20, 40))
    ),
    TokenFormat("openshift", ("sha256~",), (P("url", 43),)),
    TokenFormat("cloudflare-origin-ca", ("v1.0-",), (P("hex", 24), "-", P("hex", 146))),
    TokenFormat("alibaba-access-key-id", ("LTAI",), (P("alnum", 12, 20),), 3.0),
    TokenFormat("yandex-api-key", ("AQVN",), (P("url", 35, 38),), 3.0),
    TokenFormat("databricks", ("dapi",), (P("hex", 32),)),
    TokenFormat("age-secret-key", ("AGE-SECRET-KEY-1",), (P("bech32_upper", 58),)),
    TokenFormat("onepassword-service-account", ("ops_eyJ",), (P("b64", 250, 4000), P("pad", 0, 3)), 3.0),
    # observability
    TokenFormat("grafana-cloud", ("glc_",), (P("b64", 32, 400), P("pad", 0, 2)), 3.0),
    TokenFormat("grafana-service-account", ("glsa_",), (P("alnum", 32), "_", P("any_hex", 8))),
    TokenFormat("newrelic-user-key", ("NRAK-",), (P("upper_alnum", 27),), 3.0),
    TokenFormat("dynatrace", ("dt0c01.",), (P("alnum", 24), ".", P("alnum", 64))),
    TokenFormat("sentry-user", ("sntryu_",), (P("hex", 64),)),
    TokenFormat("sentry-org", ("sntrys_",), (P("b64_url", 80, 600),), 3.0),
    TokenFormat("maxmind", (), (P("alnum", 6), "_", P("alnum", 29), "_mmk"), needles=("_mmk",)),
    # payments, commerce, messaging
    TokenFormat("shippo", ("shippo_live_", "shippo_test_"), (P("hex", 40),)),
    TokenFormat("duffel", ("duffel_test_", "duffel_live_"), (P("url_eq", 43),)),
    TokenFormat("easypost", ("EZAK", "EZTK"), (P("alnum", 54),), 3.0),
    TokenFormat("flutterwave", ("FLWSECK_TEST-", "FLWSECK-"), (P("hex", 32), "-X")),
    TokenFormat(
        "plaid",
        ("access-sandbox-", "access-development-", "access-production-"),
        (P("hex", 8), "-", P("hex", 4), "-", P("hex", 4), "-", P("hex", 4), "-", P("hex", 12)),
    ),
    TokenFormat("brevo", ("xkeysib-", "xsmtpsib-"), (P("hex", 64), "-", P("alnum", 16))),
    TokenFormat("airtable", ("pat",), (P("alnum", 14), ".", P("hex", 64))),
    TokenFormat("notion", ("ntn_",), (P("digits", 11), P("alnum", 32, 35))),
    TokenFormat("notion-legacy", ("secret_",), (P("alnum", 43),), 3.0),
    TokenFormat("facebook-access-token", ("EAA",), (P("alnum", 100, 400),), 3.0),
    TokenFormat("twitter-bearer", ("AAAAAAAAAAAAAAAAAAAAA",), (P("alnum", 50, 120),), 3.0),
    TokenFormat("intra42", ("s-s4t2ud-", "s-s4t2af-"), (P("hex", 64),)),
    TokenFormat("settlemint", ("sm_pat_", "sm_aat_", "sm_sat_"), (P("alnum", 16),)),
)


def format_checks(
    random_body: Callable[[str, float], bool],
) -> list[tuple[TokenFormat, re.Pattern[str], Callable[[str], bool]]]:
    """Each format with its compiled pattern and its value check, given the secret scanner's
    ``random_body(body, min_entropy)`` test (passed in: this module holds data, not rules)."""
    out: list[tuple[TokenFormat, re.Pattern[str], Callable[[str], bool]]] = []
    for fmt in FORMATS:
        pattern = fmt.pattern()

        def check(value: str, fmt: TokenFormat = fmt, pattern: re.Pattern[str] = pattern) -> bool:
            return random_body(fmt.random_parts(value, pattern), fmt.min_entropy)

        out.append((fmt, pattern, check))
    return out
