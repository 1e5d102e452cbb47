"""An independent, labelled PII corpus for benchmarking scanners on what users meet.

The records (support tickets, emails, chat transcripts, CRM notes, .env/YAML/JSON config,
shell history, log lines, code, forms, invoices, letters) come from templates written for
this benchmark only. The shapes follow public detector fixtures (Presidio's recognizer tests,
detect-secrets' test data, gitleaks' rule examples, libphonenumber's metadata), not
polyadapt's scanners nor ``tests/pii_corpus.py``, so the corpus measures the scanners rather
than echoing the data they were tuned on.

Every planted entity is an exact span with a type and a subtype (``phone:NL:national``,
``secret:github``) so misses can be traced to a shape. Near misses that must not be found
(Luhn-invalid cards, bad-checksum IBANs, never-issued SSNs, order and tracking numbers, ZIP+4,
versions, netmasks, git remotes, placeholder credentials, code that reads a variable, dates
that are not birth dates, ISBNs, timestamps, ...) are recorded as spans too, so a false
finding can be attributed to the near miss it hit.

Validity is checked with independent libraries: phone numbers with ``phonenumbers``, IBANs
with ``python-stdnum``; cards are Luhn-valid with real issuer prefixes.
"""

from __future__ import annotations

import base64
import json
import random
import re
import string
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

import phonenumbers
from stdnum import iban as stdnum_iban

TYPES = (
    "email",
    "phone",
    "payment_card",
    "iban",
    "national_id",
    "ip_address",
    "secret",
    "person",
    "address",
    "passport",
    "date_of_birth",
)


@dataclass(frozen=True)
class Entity:
    """One planted PII span: ``text[start:end]`` is the value; ``subtype`` names its shape."""

    type: str
    start: int
    end: int
    subtype: str


@dataclass(frozen=True)
class NearMiss:
    """A span that looks like PII but is not; a finding on it is a false finding."""

    kind: str
    start: int
    end: int


@dataclass
class Record:
    """One generated document with its labels."""

    kind: str
    text: str
    entities: list[Entity] = field(default_factory=list)
    near_misses: list[NearMiss] = field(default_factory=list)


class _Builder:
    """Appends text and keeps the spans of planted values and near misses exact."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0
        self.entities: list[Entity] = []
        self.misses: list[NearMiss] = []

    def text(self, value: str) -> None:
        """Append plain text."""
        self.parts.append(value)
        self.pos += len(value)

    def plant(self, type_: str, value: str, subtype: str) -> None:
        """Append a planted entity and record its exact span."""
        start = self.pos
        self.text(value)
        self.entities.append(Entity(type_, start, self.pos, subtype))

    def miss(self, kind: str, value: str) -> None:
        """Append a near miss and record its span."""
        start = self.pos
        self.text(value)
        self.misses.append(NearMiss(kind, start, self.pos))

    def record(self, kind: str) -> Record:
        """The finished record."""
        return Record(kind, "".join(self.parts), self.entities, self.misses)


# ---------------------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    """A vocabulary list written as one comma-separated string (names may hold spaces)."""
    return [w.strip() for w in text.split(",")]


# origin: (male first names, female first names, surnames)
_NAMES: dict[str, tuple[list[str], list[str], list[str]]] = {
    "english": (
        _words("Oliver, George, Harry, Callum, Graham, Nigel, Rupert, Will"),
        _words("Amelia, Charlotte, Harriet, Imogen, Grace, Rosie, Beth, Hope"),
        _words("Bennett, Whitfield, Ashworth, Hargreaves, Pemberton, Holloway, Young, Hill, Fletcher"),
    ),
    "american": (
        _words("Tyler, Brandon, Marcus, DeShawn, Cody, Grant, Austin, Trevor"),
        _words("Jasmine, Madison, Kayla, Brittany, Tamika, Shannon, Brooke, Destiny"),
        _words("Carter, Jenkins, Washington, Brooks, Sullivan, Reynolds, Coleman, Price, Bishop"),
    ),
    "irish": (
        _words("Cian, Padraig, Eoin, Darragh"),
        _words("Siobhán, Aoife, Niamh, Róisín"),
        _words("O'Brien, O'Sullivan, McCarthy, Ní Bhriain, Fitzgerald, Byrne"),
    ),
    "scottish": (
        _words("Fraser, Angus, Ewan"),
        _words("Isla, Morag, Eilidh"),
        _words("MacLeod, McKenzie, Drummond"),
    ),
    "german": (
        _words("Lukas, Jürgen, Matthias, Florian, Tobias, Klaus-Dieter"),
        _words("Anja, Sabine, Katharina, Lena, Ursula, Jana"),
        _words("Schäfer, Müller, Weißenborn, Hoffmann, Krüger, von Hohenberg, Becker, Zimmermann"),
    ),
    "french": (
        _words("Thibault, Mathieu, Jean-Luc, Étienne, Hugo, Loïc"),
        _words("Camille, Anne-Marie, Élodie, Maëlle, Sophie, Inès"),
        _words("Lefèvre, Dubois, Le Gall, Rousseau, Fontaine, Moreau, Girard, Chevalier"),
    ),
    "dutch": (
        _words("Daan, Sander, Joost, Bram, Pieter"),
        _words("Sanne, Femke, Lotte, Marieke, Anouk"),
        _words("de Vries, van den Berg, Jansen, Bakker, van der Meer, Visser, Smit, de Jong"),
    ),
    "spanish": (
        _words("Alejandro, José Luis, Javier, Pablo, Sergio"),
        _words("Lucía, María José, Carmen, Paula, Nuria"),
        _words("Fernández, García Márquez, Núñez, Ruiz, de la Cruz, Ortega, Castillo"),
    ),
    "italian": (
        _words("Giuseppe, Matteo, Lorenzo, Alessandro, Davide"),
        _words("Giulia, Chiara, Francesca, Alessia, Federica"),
        _words("Romano, Esposito, Colombo, Ricci, De Luca, Bianchi, Ferrari"),
    ),
    "portuguese_br": (
        _words("Rafael, João Pedro, Thiago, Gustavo"),
        _words("Beatriz, Larissa, Fernanda, Juliana"),
        _words("Oliveira, Santos, Pereira, Carvalho, Souza"),
    ),
    "polish": (
        _words("Tomasz, Krzysztof, Paweł, Grzegorz"),
        _words("Katarzyna, Agnieszka, Małgorzata, Zofia"),
        _words("Nowak, Wiśniewski, Kowalczyk, Zieliński, Lewandowska"),
    ),
    "russian": (
        _words("Dmitri, Sergei, Alexei"),
        _words("Natalia, Yekaterina, Olga"),
        _words("Volkov, Sokolova, Ivanov"),
    ),
    "greek": (
        _words("Nikos, Giorgos, Dimitris"),
        _words("Eleni, Katerina, Sofia"),
        _words("Papadopoulos, Georgiou"),
    ),
    "turkish": (
        _words("Emre, Mehmet, Burak"),
        _words("Elif, Zeynep, Ayşe"),
        _words("Yılmaz, Demir, Çelik, Öztürk"),
    ),
    "nordic": (
        _words("Søren, Magnus, Henrik, Jukka"),
        _words("Astrid, Ingrid, Sigrid, Aino"),
        _words("Lindqvist, Johansson, Kristiansen, Virtanen, Haugen"),
    ),
    "indian": (
        _words("Arjun, Rahul, Venkatesh, Sanjay, Aditya, Harpreet"),
        _words("Priya, Ananya, Lakshmi, Deepika, Kavya, Shreya"),
        _words("Raman, Mehta, Subramanian, Iyer, Chatterjee, Reddy, Bhattacharya, Singh"),
    ),
    "pakistani": (
        _words("Imran, Bilal, Faisal"),
        _words("Ayesha, Sana, Mahnoor"),
        _words("Siddiqui, Qureshi, Malik"),
    ),
    "chinese": (
        _words("Wei, Jun, Hao, Zhiwei, Jianguo"),
        _words("Mei, Xiaoling, Yan, Jing, Li Na"),
        _words("Zhang, Wang, Liu, Chen, Huang, Zhou"),
    ),
    "japanese": (
        _words("Haruto, Kenji, Takeshi"),
        _words("Yui, Sakura, Aiko"),
        _words("Sato, Takahashi, Watanabe"),
    ),
    "korean": (
        _words("Min-jun, Seo-jun, Ji-ho"),
        _words("Ji-woo, Seo-yeon, Ha-eun"),
        _words("Kim, Park, Choi, Jeong"),
    ),
    "vietnamese": (
        _words("Minh, Tuan, Quang"),
        _words("Linh, Thu, Huong"),
        _words("Nguyen, Tran, Pham, Le"),
    ),
    "arabic": (
        _words("Omar, Khalid, Yousef, Tariq"),
        _words("Layla, Fatima, Noor, Rania"),
        _words("Haddad, Al-Farsi, Mansour, El-Amin, Nasser, Khoury"),
    ),
    "persian": (
        _words("Dariush, Reza, Arash"),
        _words("Shirin, Parisa, Leila"),
        _words("Karimi, Hosseini, Tehrani"),
    ),
    "hebrew": (
        _words("Yonatan, Eitan"),
        _words("Noa, Tamar"),
        _words("Levi, Mizrahi, Ben-David"),
    ),
    "nigerian": (
        _words("Chinedu, Oluwaseun, Emeka, Babajide"),
        _words("Amara, Ngozi, Folake, Chiamaka"),
        _words("Okafor, Adeyemi, Nwosu, Balogun, Eze"),
    ),
    "ghanaian": (
        _words("Kwame, Kofi, Yaw"),
        _words("Ama, Akosua, Efua"),
        _words("Mensah, Boateng, Asante"),
    ),
    "east_african": (
        _words("Tesfaye, Otieno"),
        _words("Selam, Wanjiru"),
        _words("Kamau, Tesfaye, Mwangi, Haile"),
    ),
    "filipino": (
        _words("Jose Miguel, Paolo"),
        _words("Maricel, Jocelyn"),
        _words("dela Cruz, Reyes, Bautista"),
    ),
}
_ORIGINS = list(_NAMES)

_COMPANIES = [
    ("Northwind Logistics", "northwind-logistics.com"),
    ("Brightline Analytics", "brightline.io"),
    ("Havel & Partner", "havel-partner.de"),
    ("Maison Corbeau", "maisoncorbeau.fr"),
    ("Tulpenfeld BV", "tulpenfeld.nl"),
    ("Riverside Dental Group", "riversidedental.co.uk"),
    ("Kestrel Cloud", "kestrelcloud.dev"),
    ("Farmacia Solari", "farmaciasolari.it"),
    ("Grupo Alameda", "grupoalameda.es"),
    ("Pinecrest Credit Union", "pinecrestcu.org"),
    ("Oakridge Property Management", "oakridgepm.com"),
    ("Quantix Labs", "quantixlabs.ai"),
]
_FREEMAIL = _words(
    "gmail.com, outlook.com, hotmail.co.uk, yahoo.com, web.de, gmx.de, orange.fr, free.fr,"
    " ziggo.nl, kpnmail.nl, libero.it, hotmail.es, icloud.com, proton.me, t-online.de"
)

# capitalised phrases that are not people (person near misses)
_NOT_PEOPLE = _words(
    "Microsoft Teams, Google Sheets, Amazon Web Services, Visual Studio Code, Apache Kafka,"
    " Red Hat, General Motors, Morgan Stanley, Marks & Spencer, Ernst & Young, New York,"
    " Los Angeles, San Francisco, Santa Clara, Black Friday, Easter Monday, Customer Success,"
    " Account Manager, Head Office, Service Desk, Jupyter Notebook, Mercedes-Benz,"
    " Hewlett Packard Enterprise, Rolls-Royce"
)


_FOLD = str.maketrans({"ß": "ss", "ł": "l", "Ł": "L", "ı": "i", "ø": "o", "æ": "ae"})


def _luhn_check_digit(partial: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(digits: str) -> bool:
    """True when ``digits`` passes the Luhn checksum."""
    return _luhn_check_digit(digits[:-1]) == digits[-1]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Person:
    """A generated person: names, an optional honorific and a derived e-mail address."""

    first: str
    last: str
    female: bool
    middle: str = ""
    title: str = ""

    @property
    def full(self) -> str:
        """The full name as written: first, optional middle initial, surname."""
        return f"{self.first} {self.middle + ' ' if self.middle else ''}{self.last}"


_TOKEN_KINDS = (
    "aws_key_id, github, github_fine, gitlab, slack, npm, pypi, huggingface, stripe, openai, anthropic, google,"
    " sendgrid, jwt"
)


class Values:
    """Generators for every planted type and near miss; all randomness from one ``random.Random``."""

    def __init__(self, rng: random.Random) -> None:
        self.r = rng

    # -- helpers --------------------------------------------------------------------------
    def digits(self, n: int, first_nonzero: bool = False) -> str:
        """``n`` random digits, optionally not starting with 0."""
        out = "".join(self.r.choice(string.digits) for _ in range(n))
        if first_nonzero and out[0] == "0":
            out = self.r.choice("123456789") + out[1:]
        return out

    def chars(self, pool: str, n: int) -> str:
        """``n`` characters drawn from ``pool``."""
        return "".join(self.r.choice(pool) for _ in range(n))

    def alnum(self, n: int) -> str:
        """``n`` random letters and digits."""
        return self.chars(string.ascii_letters + string.digits, n)

    # -- people -----------------------------------------------------------------------------
    def person(self) -> Person:
        """A person of a random origin, with a fixed honorific."""
        origin = self.r.choice(_ORIGINS)
        males, females, lasts = _NAMES[origin]
        female = self.r.random() < 0.5
        first = self.r.choice(females if female else males)
        middle = self.r.choice(string.ascii_uppercase) + "." if self.r.random() < 0.08 else ""
        p = Person(first, self.r.choice(lasts), female, middle)
        p.title = self.title(p)
        return p

    def title(self, p: Person, lang: str = "en") -> str:
        """The honorific to write before ``p``'s name (German and French forms for ``lang`` de/fr)."""
        if p.title and lang == "en":
            return p.title
        if self.r.random() < 0.25:
            return self.r.choice(["Dr.", "Prof.", "Dr"])
        if lang == "de":
            return "Frau" if p.female else "Herr"
        if lang == "fr":
            return "Mme" if p.female else "M."
        return self.r.choice(["Ms.", "Mrs."]) if p.female else self.r.choice(["Mr.", "Mr"])

    def email_for(self, p: Person, domain: str | None = None) -> str:
        """An address built from ``p``'s name the ways people build them, at a company or free-mail domain."""

        def ascii_part(s: str) -> str:
            """``s`` folded to ASCII letters and digits, as mail local parts are."""
            s = s.translate(_FOLD)
            s = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode()
            return re.sub(r"[^A-Za-z0-9]", "", s)

        first, last = ascii_part(p.first).lower(), ascii_part(p.last).lower()
        if domain is None:
            domain = self.r.choice(_FREEMAIL) if self.r.random() < 0.5 else self.r.choice(_COMPANIES)[1]
        local = self.r.choice(
            [
                f"{first}.{last}",
                f"{first[0]}.{last}",
                f"{first}{last[:1]}",
                f"{first}_{last}{self.digits(2)}",
                f"{last}.{first}",
                f"{first[0]}{last}",
                f"{first}.{last}+{self.r.choice(['billing', 'shop', 'news'])}",
            ]
        )
        out = f"{local}@{domain}"
        if self.r.random() < 0.08:
            out = f"{local.capitalize()}@{domain.upper() if self.r.random() < 0.3 else domain}"
        return out

    def role_email(self, domain: str) -> str:
        """A role address (support@, billing@) at ``domain``."""
        return f"{self.r.choice(['support', 'billing', 'hr', 'accounts', 'it-helpdesk', 'dpo'])}@{domain}"

    # -- phones -----------------------------------------------------------------------------
    _US_AREAS = _words("212, 415, 617, 312, 206, 303, 512, 646, 718, 202, 305, 404, 713, 818, 919")

    def _valid(self, cc: str, nsn: str) -> bool:
        try:
            return phonenumbers.is_valid_number(phonenumbers.parse(f"+{cc}{nsn}"))
        except phonenumbers.NumberParseException:
            return False

    def _nsn(self, cc: str, make: Callable[[], str]) -> str:
        for _ in range(200):
            nsn = make()
            if self._valid(cc, nsn):
                return nsn
        raise RuntimeError(f"no valid number for +{cc}")

    def phone(self, country: str | None = None) -> tuple[str, str]:
        """A valid phone number written the way people write it: (text, subtype)."""
        country = country or self.r.choice(["US", "US", "GB", "GB", "DE", "DE", "FR", "NL", "ES", "IT"])
        intl = self.r.random() < 0.4
        fmt = getattr(self, f"_phone_{country.lower()}")
        text = fmt(intl)
        style = "intl" if text.startswith(("+", "00")) else "national"
        return text, f"phone:{country}:{style}"

    def _phone_us(self, intl: bool) -> str:
        def make() -> str:
            ex = self.r.choice("23456789") + self.digits(2)
            if ex[1:] == "11" or ex == "555":
                ex = "867"
            return self.r.choice(self._US_AREAS) + ex + self.digits(4)

        n = self._nsn("1", make)
        a, e, ln = n[:3], n[3:6], n[6:]
        if intl:
            text = self.r.choice([f"+1 {a} {e} {ln}", f"+1-{a}-{e}-{ln}", f"+1 ({a}) {e}-{ln}", f"+1{a}{e}{ln}"])
        else:
            text = self.r.choice(
                [f"({a}) {e}-{ln}", f"{a}-{e}-{ln}", f"{a}.{e}.{ln}", f"1-{a}-{e}-{ln}", f"({a}){e}-{ln}"]
            )
        if self.r.random() < 0.15:
            text += self.r.choice(
                [f" x{self.digits(3)}", f" ext. {self.digits(2)}", f" ext {self.digits(4)}", " Ext. 7"]
            )
        return text

    def _phone_gb(self, intl: bool) -> str:
        kind = self.r.choice(["london", "city", "mobile", "mobile"])
        if kind == "london":
            n = self._nsn("44", lambda: "20" + self.r.choice("378") + self.digits(7))
            parts = [n[:2], n[2:6], n[6:]]
        elif kind == "city":
            area = self.r.choice(["161", "121", "113", "141", "131", "117"])
            n = self._nsn("44", lambda: area + self.r.choice("2345") + self.digits(6))
            parts = [n[:3], n[3:6], n[6:]]
        else:
            n = self._nsn("44", lambda: "7" + self.r.choice("4589") + self.digits(8))
            parts = [n[:4], n[4:]]
        if intl:
            text = self.r.choice(
                [
                    "+44 " + " ".join(parts),
                    "+44 (0)" + " ".join(parts),
                    "+44" + "".join(parts),
                    "0044 " + " ".join(parts),
                ]
            )
        else:
            text = self.r.choice(["0" + " ".join(parts), "0" + "".join(parts), f"(0{parts[0]}) " + " ".join(parts[1:])])
        if kind != "mobile" and self.r.random() < 0.1:
            text += f" ext. {self.digits(3)}"
        return text

    def _phone_de(self, intl: bool) -> str:
        kind = self.r.choice(["city", "city", "mobile"])
        if kind == "city":
            area = self.r.choice(["30", "89", "40", "221", "69", "711", "211"])
            n = self._nsn("49", lambda: area + self.r.choice("2345789") + self.digits(self.r.choice([6, 7])))
        else:
            area = self.r.choice(["151", "152", "160", "170", "171", "172", "176", "177", "179"])
            n = self._nsn("49", lambda: area + self.digits(8 if area.startswith("15") else 7))
        a, rest = n[: len(area)], n[len(area) :]
        split = rest if len(rest) < 7 else f"{rest[:4]} {rest[4:]}"
        if intl:
            return self.r.choice([f"+49 {a} {rest}", f"+49 (0){a} {split}", f"+49 {a} {split}", f"0049 {a} {rest}"])
        return self.r.choice([f"0{a} {rest}", f"0{a}/{rest}", f"(0{a}) {split}", f"0{a}-{rest}", f"0{a} {split}"])

    def _phone_fr(self, intl: bool) -> str:
        n = self._nsn("33", lambda: self.r.choice("1234567") + self.digits(8))
        pairs = [n[1:3], n[3:5], n[5:7], n[7:9]]
        if intl:
            return self.r.choice([f"+33 {n[0]} " + " ".join(pairs), f"+33 (0){n[0]} " + " ".join(pairs), f"+33{n}"])
        sep = self.r.choice([" ", ".", " ", ""])
        return f"0{n[0]}{sep}" + sep.join(pairs)

    def _phone_nl(self, intl: bool) -> str:
        if self.r.random() < 0.5:
            area = self.r.choice(["20", "10", "30", "70", "40"])
            n = self._nsn("31", lambda: area + self.r.choice("2345678") + self.digits(6))
            a, rest = n[:2], n[2:]
            if intl:
                return self.r.choice([f"+31 {a} {rest[:3]} {rest[3:]}", f"+31 (0){a} {rest}", f"+31{n}"])
            return self.r.choice([f"0{a} {rest[:3]} {rest[3:]}", f"0{a}-{rest}", f"0{a} {rest}"])
        n = self._nsn("31", lambda: "6" + self.r.choice("1234") + self.digits(7))
        if intl:
            return self.r.choice([f"+31 6 {n[1:]}", f"+31 6 {n[1:5]} {n[5:]}", f"+31 (0)6 {n[1:]}"])
        return self.r.choice([f"06 {n[1:]}", f"06-{n[1:]}", f"06 {n[1:5]} {n[5:]}", f"06{n[1:]}"])

    def _phone_es(self, intl: bool) -> str:
        if self.r.random() < 0.5:
            n = self._nsn("34", lambda: self.r.choice(["91", "93", "96", "95", "94"]) + self.digits(7))
        else:
            n = self._nsn("34", lambda: "6" + self.digits(8))
        g3 = f"{n[:3]} {n[3:6]} {n[6:]}"
        g2 = f"{n[:3]} {n[3:5]} {n[5:7]} {n[7:]}" if n[0] == "6" else f"{n[:2]} {n[2:5]} {n[5:7]} {n[7:]}"
        if intl:
            return self.r.choice([f"+34 {g3}", f"+34 {g2}", f"+34{n}", f"0034 {n}"])
        return self.r.choice([g3, g2, n])

    def _phone_it(self, intl: bool) -> str:
        if self.r.random() < 0.5:
            area = self.r.choice(["06", "02"])
            n = self._nsn("39", lambda: area + self.digits(8))
            body = self.r.choice([f"{n[:2]} {n[2:6]} {n[6:]}", f"{n[:2]}-{n[2:]}", f"{n[:2]} {n[2:]}"])
        else:
            n = self._nsn("39", lambda: "3" + self.r.choice("2456789") + self.digits(8))
            body = self.r.choice([f"{n[:3]} {n[3:6]} {n[6:]}", f"{n[:3]} {n[3:]}", f"{n[:3]}-{n[3:]}"])
        if intl:
            return self.r.choice([f"+39 {body}", f"+39 {n}", f"0039 {body}"])
        return body

    def tel_uri(self) -> tuple[str, str]:
        """A ``tel:`` URI (RFC 3966, compact or dashed): (text, subtype)."""
        country = self.r.choice(["US", "GB", "DE", "FR", "NL"])
        cc = {"US": "1", "GB": "44", "DE": "49", "FR": "33", "NL": "31"}[country]
        text, _ = self.phone(country)
        digits = re.sub(r"\D", "", text.split(" x")[0].split(" ext")[0].split(" Ext")[0].replace("(0)", ""))
        if digits.startswith("00"):
            digits = digits[2:]
        elif not text.startswith("+"):
            digits = cc + (digits[1:] if digits.startswith("0") or (cc == "1" and digits.startswith("1")) else digits)
        if self.r.random() < 0.5:
            return f"tel:+{digits}", f"phone:{country}:tel_uri"
        return f"tel:+{cc}-" + "-".join(re.findall(r"\d{1,4}", digits[len(cc) :])), f"phone:{country}:tel_uri"

    # -- payment cards --------------------------------------------------------------------
    _ISSUERS: dict[str, list[tuple[str, int]]] = {
        "visa": [("4", 16)],
        "mastercard": [("51", 16), ("53", 16), ("55", 16), ("2221", 16), ("2720", 16), ("23", 16)],
        "amex": [("34", 15), ("37", 15)],
        "discover": [("6011", 16), ("65", 16), ("644", 16)],
        "jcb": [("3528", 16), ("3566", 16), ("3589", 16)],
        "diners": [("36", 14), ("300", 14), ("305", 14)],
        "maestro": [("6759", 16), ("5018", 16), ("6304", 19), ("6763", 16)],
    }

    def _card_digits(self, brand: str) -> str:
        prefix, length = self.r.choice(self._ISSUERS[brand])
        partial = prefix + self.digits(length - len(prefix) - 1)
        return partial + _luhn_check_digit(partial)

    def _group_card(self, d: str, sep: str) -> str:
        if len(d) == 15:
            groups = [d[:4], d[4:10], d[10:]]
        elif len(d) == 14:
            groups = [d[:4], d[4:10], d[10:]]
        else:
            groups = [d[i : i + 4] for i in range(0, len(d), 4)]
        return sep.join(groups)

    def card(self) -> tuple[str, str]:
        """A Luhn-valid card number with a real issuer prefix, grouped or compact."""
        brand = self.r.choice(list(self._ISSUERS) + ["visa", "mastercard", "visa"])
        d = self._card_digits(brand)
        sep = self.r.choice([" ", " ", "-", ""])
        return self._group_card(d, sep), f"payment_card:{brand}:{'compact' if not sep else 'grouped'}"

    def bad_card(self) -> str:
        """A card number with a real prefix whose Luhn check fails."""
        brand = self.r.choice(["visa", "mastercard", "amex", "discover"])
        d = self._card_digits(brand)
        d = d[:-1] + str((int(d[-1]) + self.r.randint(1, 9)) % 10)
        return self._group_card(d, self.r.choice([" ", "-", ""]))

    def imei(self) -> str:
        """A Luhn-valid 15-digit IMEI: not a card."""
        partial = self.r.choice(["35", "86", "01"]) + self.digits(12)
        return partial + _luhn_check_digit(partial)

    # -- IBAN -------------------------------------------------------------------------------
    _IBAN_COUNTRIES = (
        "DE DE GB GB FR FR NL NL ES IT BE AT CH PL PT IE SE DK NO FI LU CZ GR RO HU SA AE TR BR LT".split()
    )

    def _iban_compact(self, cc: str) -> str:
        struct = stdnum_iban._ibandb.info(cc + "00")[0][1]["bban"]
        pools = {"n": string.digits, "a": string.ascii_uppercase, "c": string.ascii_uppercase + string.digits}
        for _ in range(5000):
            bban = "".join(self.chars(pools[t], int(n)) for n, t in re.findall(r"(\d+)!([nac])", struct))
            number = cc + stdnum_iban.calc_check_digits(cc + "00" + bban) + bban
            if stdnum_iban.is_valid(number):
                return number
        raise RuntimeError(f"no valid IBAN for {cc}")

    def _iban_style(self, compact: str) -> tuple[str, str]:
        style = self.r.choice(["compact", "spaced", "spaced", "lower", "lower_spaced"])
        text = stdnum_iban.format(compact) if "spaced" in style else compact
        if "lower" in style:
            text = text.lower()
        return text, style

    def iban(self) -> tuple[str, str]:
        """A valid IBAN (stdnum-checked, national check digits included) in a random style."""
        cc = self.r.choice(self._IBAN_COUNTRIES)
        text, style = self._iban_style(self._iban_compact(cc))
        return text, f"iban:{cc}:{style}"

    def bad_iban(self) -> str:
        """An IBAN whose check digits are wrong."""
        compact = self._iban_compact(self.r.choice(self._IBAN_COUNTRIES))
        check = int(compact[2:4])
        wrong = f"{(check + self.r.randint(1, 50)) % 97 + 2:02d}"
        while wrong == compact[2:4]:
            wrong = f"{self.r.randint(2, 98):02d}"
        text, _ = self._iban_style(compact[:2] + wrong + compact[4:])
        return text

    # -- national ids ---------------------------------------------------------------------
    def ssn(self) -> tuple[str, str]:
        """A US SSN from the issued ranges: (text, subtype)."""
        area = self.r.choice([self.r.randint(1, 665), self.r.randint(667, 899)])
        group, serial = self.r.randint(1, 99), self.r.randint(1, 9999)
        sep = self.r.choice(["-", "-", "-", " "])
        return f"{area:03d}{sep}{group:02d}{sep}{serial:04d}", "national_id:us_ssn"

    def bad_ssn(self) -> str:
        """An SSN shape that is never issued (area 000, 666 or 9xx, group 00, serial 0000)."""
        area, group, serial = self.r.randint(1, 665), self.r.randint(1, 99), self.r.randint(1, 9999)
        which = self.r.choice(["000", "666", "9xx", "group", "serial"])
        if which == "000":
            area = 0
        elif which == "666":
            area = 666
        elif which == "9xx":
            area = self.r.randint(900, 999)
        elif which == "group":
            group = 0
        else:
            serial = 0
        return f"{area:03d}-{group:02d}-{serial:04d}"

    _NINO_FIRST = "ABCEGHJKLMNOPRSTWXYZ"
    _NINO_SECOND = "ABCEGHJKLMNPRSTWXYZ"

    def nino(self) -> tuple[str, str]:
        """A UK National Insurance number with a valid prefix and suffix: (text, subtype)."""
        while True:
            prefix = self.r.choice(self._NINO_FIRST) + self.r.choice(self._NINO_SECOND)
            if prefix not in {"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"}:
                break
        d = self.digits(6)
        suffix = self.r.choice("ABCD")
        style = self.r.choice(["spaced", "compact", "spaced", "lower"])
        text = f"{prefix} {d[:2]} {d[2:4]} {d[4:]} {suffix}" if style == "spaced" else f"{prefix}{d}{suffix}"
        if style == "lower":
            text = self.r.choice([text.lower(), f"{prefix} {d[:2]} {d[2:4]} {d[4:]} {suffix}".lower()])
        return text, f"national_id:uk_nino:{style}"

    def bad_nino(self) -> str:
        """A NINO shape with a prefix or suffix HMRC never issues."""
        prefix = self.r.choice(["BG", "GB", "NK", "TN", "ZZ", "QQ", "DA", "FY", "VO"])
        d = self.digits(6)
        suffix = self.r.choice("ABCD") if prefix != "GB" else "E"
        return f"{prefix} {d[:2]} {d[2:4]} {d[4:]} {suffix}" if self.r.random() < 0.5 else f"{prefix}{d}{suffix}"

    # -- passports --------------------------------------------------------------------------
    def passport(self) -> tuple[str, str, str]:
        """(context words, number, subtype): passport numbers only ever appear after context."""
        country = self.r.choice(["US", "US", "GB", "GB", "DE", "FR", "NL", "ES", "IT"])
        if country == "US":
            number = self.digits(9, True) if self.r.random() < 0.6 else self.r.choice("ACEFGHJKLM") + self.digits(8)
        elif country == "GB":
            number = self.digits(9, True)
        elif country == "DE":
            number = self.r.choice("CFGHJK") + self.chars("CFGHJKLMNPRTVWXYZ0123456789", 8)
        elif country == "FR":
            number = self.digits(2) + self.chars("ABCDEFGHJKLMNPRSTUVWXYZ", 2) + self.digits(5)
        elif country == "NL":
            number = (
                self.chars("BCDFGHJKLMNPRSTVWXYZ", 2) + self.chars("BCDFGHJKLMNPRSTVWXYZ0123456789", 6) + self.digits(1)
            )
        elif country == "ES":
            number = self.chars("ABCDEFGHJKLMNPRSTUVWXYZ", 3) + self.digits(6)
        else:
            number = self.chars("ABCDEFGHJKLMNPRSTUVWXYZ", 2) + self.digits(7)
        context = {
            "US": ["Passport No. ", "passport number ", "Passport #", "US passport no.: ", "passport: "],
            "GB": ["Passport number: ", "passport no. ", "UK passport ", "Passport No: "],
            "DE": ["Reisepass-Nr.: ", "Passnummer ", "passport no. ", "Reisepassnummer: "],
            "FR": ["N° de passeport : ", "numéro de passeport ", "Passport No. "],
            "NL": ["paspoortnummer ", "Paspoortnr.: ", "passport number: "],
            "ES": ["número de pasaporte: ", "Pasaporte n.º ", "passport no. "],
            "IT": ["numero di passaporto ", "Passaporto n. ", "Passport No.: "],
        }[country]
        return self.r.choice(context), number, f"passport:{country}"

    # -- dates ------------------------------------------------------------------------------
    _MONTHS = _words("January, February, March, April, May, June, July, August, September, October, November, December")
    _MONTHS_DE = _words("Januar, Februar, März, April, Mai, Juni, Juli, August, September, Oktober, November, Dezember")
    _MONTHS_FR = _words(
        "janvier, février, mars, avril, mai, juin, juillet, août, septembre, octobre, novembre, décembre"
    )

    def _date(self, y0: int, y1: int) -> tuple[int, int, int]:
        return self.r.randint(y0, y1), self.r.randint(1, 12), self.r.randint(1, 28)

    def _fmt_date(self, ymd: tuple[int, int, int], lang: str = "en") -> str:
        y, m, d = ymd
        if lang == "de":
            return self.r.choice([f"{d:02d}.{m:02d}.{y}", f"{d}. {self._MONTHS_DE[m - 1]} {y}", f"{d}.{m}.{y}"])
        if lang == "fr":
            return self.r.choice([f"{d:02d}/{m:02d}/{y}", f"{d} {self._MONTHS_FR[m - 1]} {y}"])
        if lang in ("es", "it", "nl"):
            return self.r.choice([f"{d:02d}/{m:02d}/{y}", f"{d:02d}-{m:02d}-{y}"])
        return self.r.choice(
            [
                f"{m:02d}/{d:02d}/{y}",
                f"{d:02d}/{m:02d}/{y}",
                f"{y}-{m:02d}-{d:02d}",
                f"{d} {self._MONTHS[m - 1]} {y}",
                f"{self._MONTHS[m - 1]} {d}, {y}",
                f"{d}-{self._MONTHS[m - 1][:3]}-{y}",
                f"{self._MONTHS[m - 1][:3]} {d}, {y}",
            ]
        )

    def dob(self) -> tuple[str, str, str]:
        """(context, date, subtype): a birth date after a birth context."""
        lang = self.r.choice(["en"] * 6 + ["de", "fr", "es", "it", "nl"])
        ctx = {
            "en": [
                "DOB: ",
                "D.O.B. ",
                "Date of birth: ",
                "date of birth ",
                "born on ",
                "was born ",
                "Birth date: ",
                "DOB ",
                "dob=",
            ],
            "de": ["Geburtsdatum: ", "geb. ", "geboren am "],
            "fr": ["né le ", "née le ", "Date de naissance : "],
            "es": ["fecha de nacimiento: ", "nacido el "],
            "it": ["data di nascita: ", "nato il "],
            "nl": ["geboortedatum: ", "geboren op "],
        }[lang]
        return self.r.choice(ctx), self._fmt_date(self._date(1940, 2006), lang), f"date_of_birth:{lang}"

    def plain_date(self) -> str:
        """A recent date that is not a birth date."""
        return self._fmt_date(self._date(2015, 2026), self.r.choice(["en", "en", "de", "fr"]))

    def timestamp(self) -> str:
        """A log or mail timestamp."""
        y, m, d = self._date(2021, 2025)
        hh, mm, ss = self.r.randint(0, 23), self.r.randint(0, 59), self.r.randint(0, 59)
        return self.r.choice(
            [
                f"{y}-{m:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}Z",
                f"{y}-{m:02d}-{d:02d} {hh:02d}:{mm:02d}:{ss:02d}",
                f"{y}-{m:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}.{self.digits(3)}+01:00",
                f"{d:02d}/{self._MONTHS[m - 1][:3]}/{y}:{hh:02d}:{mm:02d}:{ss:02d} +0000",
                f"{self.r.choice(['Mon', 'Tue', 'Wed', 'Thu', 'Fri'])}, {d} {self._MONTHS[m - 1][:3]} {y} "
                f"{hh:02d}:{mm:02d}:{ss:02d} +0100",
            ]
        )

    # -- networks ---------------------------------------------------------------------------
    def ip4(self) -> tuple[str, str]:
        """An IPv4 host address, public or private: (text, subtype)."""
        if self.r.random() < 0.65:
            first = self.r.choice([23, 31, 37, 45, 62, 77, 81, 86, 91, 94, 109, 145, 151, 176, 185, 188, 193, 212, 217])
            return (
                f"{first}.{self.r.randint(0, 255)}.{self.r.randint(0, 255)}.{self.r.randint(1, 254)}",
                "ip_address:v4:public",
            )
        return (
            self.r.choice(
                [
                    f"10.{self.r.randint(0, 255)}.{self.r.randint(0, 255)}.{self.r.randint(1, 254)}",
                    f"192.168.{self.r.randint(0, 255)}.{self.r.randint(1, 254)}",
                    f"172.{self.r.randint(16, 31)}.{self.r.randint(0, 255)}.{self.r.randint(1, 254)}",
                ]
            ),
            "ip_address:v4:private",
        )

    def ip6(self) -> tuple[str, str]:
        """An IPv6 host address, full or compressed: (text, subtype)."""
        head = self.r.choice(["2001:0db9", "2a02:810d", "2a01:4f8", "2600:1f18", "2607:f8b0", "2804:14c", "2c0f:fb50"])
        groups = head.split(":") + [f"{self.r.randint(0, 0xFFFF):x}" for _ in range(6)]
        style = self.r.choice(["full", "compressed", "compressed"])
        if style == "compressed":
            groups = groups[:4] + [""] + groups[6:]
            text = ":".join(groups).replace(":::", "::")
        else:
            text = ":".join(groups)
        if self.r.random() < 0.2:
            text = text.upper()
        return text, f"ip_address:v6:{style}"

    def netmask(self) -> str:
        """A netmask: IPv4-shaped but not a host."""
        return self.r.choice(["255.255.255.0", "255.255.0.0", "255.255.255.128", "255.255.252.0", "255.0.0.0"])

    def mac(self) -> str:
        """A MAC address."""
        return ":".join(f"{self.r.randint(0, 255):02x}" for _ in range(6))

    def version4(self) -> str:
        """A four-part version number, IPv4-shaped."""
        return f"{self.r.randint(1, 12)}.{self.r.randint(0, 9)}.{self.r.randint(0, 30)}.{self.r.randint(0, 99)}"

    def version3(self) -> str:
        """A three-part version number."""
        return f"{self.r.randint(0, 4)}.{self.r.randint(0, 30)}.{self.r.randint(0, 12)}"

    # -- secrets ----------------------------------------------------------------------------
    def secret_token(self) -> tuple[str, str]:
        """A provider token in its published shape: (value, subtype)."""
        kind = self.r.choice(_words(_TOKEN_KINDS))
        return self.secret_of(kind), f"secret:{kind}"

    def secret_of(self, kind: str) -> str:
        """A token of ``kind`` in its provider's published shape."""
        a = self.alnum
        if kind == "aws_key_id":
            return self.r.choice(["AKIA", "AKIA", "ASIA"]) + self.chars(string.ascii_uppercase + "234567", 16)
        if kind == "aws_secret":
            return self.chars(string.ascii_letters + string.digits + "/+", 40)
        if kind == "github":
            return self.r.choice(["ghp_", "ghp_", "gho_", "ghs_", "ghu_"]) + a(36)
        if kind == "github_fine":
            return "github_pat_11" + self.chars(string.ascii_uppercase + string.digits, 20) + "_" + a(59)
        if kind == "gitlab":
            return "glpat-" + self.chars(string.ascii_letters + string.digits + "_-", 20)
        if kind == "slack":
            return self.r.choice(
                [
                    f"xoxb-{self.digits(12, True)}-{self.digits(13, True)}-{a(24)}",
                    f"xoxp-{self.digits(11, True)}-{self.digits(12, True)}-{self.digits(12, True)}-"
                    + self.chars("0123456789abcdef", 32),
                ]
            )
        if kind == "npm":
            return "npm_" + a(36)
        if kind == "pypi":
            return "pypi-AgEIcHlwaS5vcmc" + self.chars(string.ascii_letters + string.digits + "_-", 70)
        if kind == "huggingface":
            return "hf_" + self.chars(string.ascii_letters, 34)
        if kind == "stripe":
            return self.r.choice(["sk_live_", "rk_live_", "sk_test_"]) + a(self.r.choice([24, 34, 99]))
        if kind == "openai":
            pool = string.ascii_letters + string.digits + "_-"
            if self.r.random() < 0.3:
                return "sk-" + a(20) + "T3BlbkFJ" + a(20)
            return "sk-proj-" + self.chars(pool, 74) + "T3BlbkFJ" + self.chars(pool, 74)
        if kind == "anthropic":
            return "sk-ant-api03-" + self.chars(string.ascii_letters + string.digits + "_-", 93) + "AA"
        if kind == "google":
            return "AIza" + self.chars(string.ascii_letters + string.digits + "_-", 35)
        if kind == "sendgrid":
            return (
                "SG."
                + self.chars(string.ascii_letters + string.digits + "_-", 22)
                + "."
                + self.chars(string.ascii_letters + string.digits + "_-", 43)
            )
        if kind == "jwt":
            return self.jwt()
        raise ValueError(kind)

    def jwt(self) -> str:
        """A signed-looking JWT with a real base64url header and payload."""
        header = {"alg": self.r.choice(["HS256", "RS256", "ES256"]), "typ": "JWT"}
        payload = {
            "sub": self.digits(8),
            "iat": 1_700_000_000 + self.r.randint(0, 50_000_000),
            "scope": self.r.choice(["read:orders", "admin", "api"]),
        }
        sig = bytes(self.r.randrange(256) for _ in range(32))
        return f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(payload).encode())}.{_b64url(sig)}"

    def private_key(self) -> str:
        """A PEM private-key block (random body)."""
        kind = self.r.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "OPENSSH PRIVATE KEY", "EC PRIVATE KEY"])
        body = base64.b64encode(bytes(self.r.randrange(256) for _ in range(self.r.choice([96, 144, 240])))).decode()
        lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        return f"-----BEGIN {kind}-----\n" + "\n".join(lines) + f"\n-----END {kind}-----"

    def password(self) -> tuple[str, str]:
        """A password as people set them: random, human-memorable or a long random hex/base64 secret."""
        style = self.r.choice(["random", "human", "human", "hex", "b64"])
        if style == "random":
            value = self.chars(string.ascii_letters + string.digits + "!#%&*+-=?^_~", self.r.randint(12, 24))
        elif style == "human":
            word = self.r.choice(
                ["Winter", "Bluebird", "Marmalade", "Kestrel", "Lighthouse", "Falcon", "Orchid", "Tangerine"]
            )
            value = self.r.choice(
                [
                    f"{word}{self.r.randint(2015, 2025)}!",
                    f"{word.lower()}-{self.r.choice(['horse', 'staple', 'river', 'cactus'])}-{self.digits(2)}",
                    f"{word[:1]}{word[1:].replace('o', '0').replace('e', '3')}#{self.digits(3)}",
                ]
            )
        elif style == "hex":
            value = self.chars("0123456789abcdef", self.r.choice([32, 64]))
        else:
            value = base64.b64encode(bytes(self.r.randrange(256) for _ in range(self.r.choice([24, 32])))).decode()
        return value, f"secret:password:{style}"

    def placeholder(self) -> str:
        """A placeholder or documentation credential that is not a secret."""
        return self.r.choice(
            [
                "<your-token>",
                "<YOUR_API_KEY>",
                "changeme",
                "${DB_PASSWORD}",
                "$DB_PASSWORD",
                "{{ secrets.NPM_TOKEN }}",
                "{{ .Values.db.password }}",
                "********",
                "REDACTED",
                "your-password-here",
                "xxxxxxxxxxxxxxxx",
                "AKIAIOSFODNN7EXAMPLE",
                "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                "%(db_password)s",
                "<password>",
                "TODO",
            ]
        )

    def git_sha(self) -> str:
        """A 40-hex commit id."""
        return self.chars("0123456789abcdef", 40)

    def uuid(self) -> str:
        """A version-4 UUID."""
        h = self.chars("0123456789abcdef", 32)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{self.r.choice('89ab')}{h[17:20]}-{h[20:]}"

    # -- addresses --------------------------------------------------------------------------
    _US_STREETS = _words(
        "Maple, Oak, Cedar, Washington, Lincoln, Elm, Sunset, Lakeview, Hillcrest, Park, Magnolia,"
        " Willow Creek, Martin Luther King Jr"
    )
    _US_SUFFIX = _words("Street, St., Avenue, Ave, Road, Rd., Boulevard, Blvd, Lane, Drive, Dr., Court, Way, Place")
    _US_CITIES = [
        tuple(c.split("/"))
        for c in _words(
            "Springfield/IL, Austin/TX, Portland/OR, Columbus/OH, Boston/MA, Denver/CO, Raleigh/NC, Tucson/AZ,"
            " Madison/WI, Brooklyn/NY, Oakland/CA, Savannah/GA"
        )
    ]
    _UK_STREETS = _words(
        "Kingsley Road, Victoria Street, Church Lane, Mill Road, Station Approach, Queen's Crescent,"
        " Albert Terrace, Highfield Avenue, The Green, Orchard Close"
    )
    _UK_CITIES = [
        (c.split("/")[0], c.split("/")[1].split())
        for c in _words(
            "London/SW1A NW1 E14 SE1 N7 W2, Manchester/M14 M20 M1, Birmingham/B15 B5, Leeds/LS6 LS1, Bristol/BS8 BS1,"
            " Edinburgh/EH1 EH9, Cardiff/CF10 CF24, Glasgow/G12 G3"
        )
    ]
    _DE_STREETS = _words(
        "Hauptstraße, Bahnhofstraße, Lindenallee, Schillerstr., Goethestraße,"
        " Friedrich-Ebert-Straße, Kastanienweg, Am Markt, Berliner Allee, Gartenweg"
    )
    _DE_CITIES = [
        tuple(c.split(" ", 1))
        for c in _words(
            "10115 Berlin, 80336 München, 50968 Köln, 20095 Hamburg, 60311 Frankfurt am Main, 70173 Stuttgart,"
            " 04109 Leipzig, 28195 Bremen"
        )
    ]
    _FR_STREETS = _words(
        "rue de la Paix, avenue Jean Jaurès, boulevard Haussmann, rue Victor Hugo,"
        " chemin des Vignes, allée des Tilleuls, impasse du Moulin, place Bellecour,"
        " quai de la Loire"
    )
    _FR_CITIES = [
        tuple(c.split(" ", 1))
        for c in _words(
            "75002 Paris, 69007 Lyon, 13001 Marseille, 31000 Toulouse, 33000 Bordeaux, 44000 Nantes, 67000 Strasbourg"
        )
    ]
    _NL_STREETS = _words(
        "Keizersgracht, Oudegracht, Stationsweg, Coolsingel, Dorpsstraat, Kerkstraat, Laan van Meerdervoort, Molenweg"
    )
    _NL_CITIES = [
        tuple(c.split(" ", 1))
        for c in _words(
            "1015 Amsterdam, 3511 Utrecht, 2312 Leiden, 3011 Rotterdam, 2517 Den Haag, 9711 Groningen, 5611 Eindhoven"
        )
    ]

    def _uk_postcode(self, areas: list[str]) -> str:
        return f"{self.r.choice(areas)} {self.r.randint(1, 9)}{self.chars('ABDEFGHJLNPQRSTUWXYZ', 2)}"

    def address(self, multiline: bool = False) -> tuple[str, str]:
        """A street address, whole (street to city and postcode): (text, subtype)."""
        country = self.r.choice(["US", "US", "GB", "GB", "DE", "FR", "NL"])
        sep = "\n" if multiline else ", "
        r = self.r
        if country == "US":
            street = f"{r.randint(1, 9899)} {r.choice(self._US_STREETS)} {r.choice(self._US_SUFFIX)}"
            unit = r.choice(
                [
                    "",
                    "",
                    "",
                    f"Apt {r.randint(1, 40)}{r.choice('ABCD')}",
                    f"Suite {r.randint(100, 950)}",
                    f"#{r.randint(2, 30)}",
                ]
            )
            city, state = r.choice(self._US_CITIES)
            zipc = self.digits(5, True) + (f"-{self.digits(4)}" if r.random() < 0.25 else "")
            lines = [
                street + (f", {unit}" if unit and not multiline else ""),
                *([unit] if unit and multiline else []),
                f"{city}, {state} {zipc}",
            ]
        elif country == "GB":
            city, areas = r.choice(self._UK_CITIES)
            flat = r.choice(["", "", f"Flat {r.randint(1, 12)}", f"Flat {r.randint(1, 9)}{r.choice('AB')}"])
            street = f"{r.randint(1, 240)}{r.choice(['', '', 'A', 'B'])} {r.choice(self._UK_STREETS)}"
            lines = [*([flat] if flat else []), street, f"{city} {self._uk_postcode(areas)}"]
            if not multiline and flat:
                lines = [f"{flat}, {street}", lines[-1]]
        elif country == "DE":
            plz, city = r.choice(self._DE_CITIES)
            lines = [f"{r.choice(self._DE_STREETS)} {r.randint(1, 180)}{r.choice(['', '', 'a', 'b'])}", f"{plz} {city}"]
        elif country == "FR":
            cp, city = r.choice(self._FR_CITIES)
            lines = [f"{r.randint(1, 140)}{r.choice(['', '', ' bis'])} {r.choice(self._FR_STREETS)}", f"{cp} {city}"]
        else:
            pc, city = r.choice(self._NL_CITIES)
            letters = self.chars("ABCEGHJKLMNPRTVWXZ", 2)
            lines = [
                f"{r.choice(self._NL_STREETS)} {r.randint(1, 400)}{r.choice(['', '', 'A', '-2', ' hs'])}",
                f"{pc} {letters} {city}",
            ]
        return sep.join(lines), f"address:{country}:{'multiline' if multiline else 'inline'}"


# ---------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------

# "{slot}" calls a generator; "{!kind:literal}" writes a fixed near miss of that kind
_SLOT = re.compile(r"\{(\w+)\}|\{!(\w+):([^{}]*)\}")

_TICKET_ISSUES = [
    "The checkout page times out after I enter my details and press Pay.",
    "I was charged twice for the March subscription and would like one payment refunded.",
    "Since the last app update I cannot log in; the reset link in the e-mail has already expired.",
    "The parcel shows as delivered but nothing arrived, and the courier left no note.",
    "Our invoice lists twelve seats although we downgraded to eight in January.",
    "The export to CSV drops every row after the first thousand.",
    "Please close my account and delete the data you hold about me.",
    "I need to change the bank account used for the monthly direct debit.",
]
_CHAT_LINES = [
    "can you check the logs for me?",
    "sure, give me a minute",
    "it worked yesterday, nothing changed on our side",
    "I'll escalate this to the second line",
    "thanks, that fixed it",
    "ok, restarting the worker now",
    "no rush, tomorrow morning is fine",
    "which environment, staging or prod?",
]
_FILLER = [
    "Please let us know if anything else comes up.",
    "We apologise for the inconvenience this has caused.",
    "The team reviewed the request during the weekly triage meeting.",
    "Nothing in the configuration has changed since the last release.",
    "A reply is usually sent within two working days.",
    "The refund will appear on the statement in three to five business days.",
    "We will keep the ticket open until the fix has been confirmed.",
    "See the attached screenshot for the exact error message.",
]


class CorpusGenerator:
    """Makes labelled records: one record kind per method, consistent people within a record."""

    KINDS = (
        ("ticket", 12),
        ("email", 12),
        ("chat", 9),
        ("crm", 10),
        ("env", 8),
        ("yaml", 6),
        ("json", 5),
        ("shell", 7),
        ("log", 8),
        ("code", 7),
        ("form", 6),
        ("invoice", 5),
        ("letter", 5),
    )

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)
        self.v = Values(self.r)

    # -- slot machinery ---------------------------------------------------------------------
    def fill(self, b: _Builder, template: str, ctx: dict[str, Person]) -> None:
        """Write ``template``, replacing each ``{slot}`` through the ``_s_<slot>`` method."""
        pos = 0
        for m in _SLOT.finditer(template):
            b.text(template[pos : m.start()])
            name = m.group(1)
            if name is None:
                b.miss(m.group(2), m.group(3))
            elif name[:2] in ("p1", "p2") and name[2:] in ("", "t", "last", "mail", "rev"):
                self._person_slot(b, ctx[name[:2]], name[2:])
            elif name.startswith("tok_"):
                kind = name[4:]
                if kind == "github" and self.r.random() < 0.3:
                    kind = "github_fine"
                b.plant("secret", self.v.secret_of(kind), f"secret:{kind}")
            else:
                getattr(self, f"_s_{name}")(b)
            pos = m.end()
        b.text(template[pos:])

    def _person_slot(self, b: _Builder, p: Person, form: str) -> None:
        if form == "":
            b.plant("person", p.full, "person:full")
        elif form == "t":
            b.text(self.v.title(p) + " ")
            b.plant("person", p.full, "person:titled")
        elif form == "last":
            b.text(self.v.title(p) + " ")
            b.plant("person", p.last, "person:title_surname")
        elif form == "rev":
            b.plant("person", f"{p.last}, {p.first}", "person:last_first")
        else:
            b.plant("email", self.v.email_for(p), "email:personal")

    def _s_email(self, b: _Builder) -> None:
        b.plant("email", self.v.email_for(self.v.person()), "email:other")

    def _s_roleemail(self, b: _Builder) -> None:
        b.plant("email", self.v.role_email(self.r.choice(_COMPANIES)[1]), "email:role")

    def _s_phone(self, b: _Builder) -> None:
        text, sub = self.v.phone()
        b.plant("phone", text, sub)

    def _s_tel(self, b: _Builder) -> None:
        text, sub = self.v.tel_uri()
        b.text("tel:")
        b.plant("phone", text[4:], sub)

    def _s_card(self, b: _Builder) -> None:
        b.plant("payment_card", *self.v.card())

    def _s_iban(self, b: _Builder) -> None:
        b.plant("iban", *self.v.iban())

    def _s_ssn(self, b: _Builder) -> None:
        b.plant("national_id", *self.v.ssn())

    def _s_nino(self, b: _Builder) -> None:
        b.plant("national_id", *self.v.nino())

    def _s_ip4(self, b: _Builder) -> None:
        b.plant("ip_address", *self.v.ip4())

    def _s_ip6(self, b: _Builder) -> None:
        b.plant("ip_address", *self.v.ip6())

    def _s_ip(self, b: _Builder) -> None:
        (self._s_ip6 if self.r.random() < 0.25 else self._s_ip4)(b)

    def _s_token(self, b: _Builder) -> None:
        b.plant("secret", *self.v.secret_token())

    def _s_urlpw(self, b: _Builder) -> None:
        value, sub = self.v.password()
        b.plant("secret", quote(value, safe="!$&'()*+,;=-._~"), sub.replace("password", "url_password"))

    def _s_awssecret(self, b: _Builder) -> None:
        b.plant("secret", self.v.secret_of("aws_secret"), "secret:aws_secret")

    def _s_password(self, b: _Builder) -> None:
        b.plant("secret", *self.v.password())

    def _s_address(self, b: _Builder) -> None:
        b.plant("address", *self.v.address())

    def _s_maddress(self, b: _Builder) -> None:
        b.plant("address", *self.v.address(multiline=True))

    def _s_passport(self, b: _Builder) -> None:
        ctx, number, sub = self.v.passport()
        b.text(ctx)
        b.plant("passport", number, sub)

    def _s_dob(self, b: _Builder) -> None:
        ctx, date, sub = self.v.dob()
        b.text(ctx)
        b.plant("date_of_birth", date, sub)

    # near misses
    def _s_badcard(self, b: _Builder) -> None:
        b.miss("luhn_invalid_card", self.v.bad_card())

    def _s_badiban(self, b: _Builder) -> None:
        b.miss("bad_checksum_iban", self.v.bad_iban())

    def _s_badssn(self, b: _Builder) -> None:
        b.miss("never_issued_ssn", self.v.bad_ssn())

    def _s_badnino(self, b: _Builder) -> None:
        b.miss("invalid_nino", self.v.bad_nino())

    def _s_order(self, b: _Builder) -> None:
        v = self.v
        b.miss(
            "order_no",
            self.r.choice(
                [
                    f"{v.digits(3, True)}-{v.digits(7)}-{v.digits(7)}",
                    f"ORD-{v.digits(8)}",
                    f"#{v.digits(7, True)}",
                    f"{v.digits(4, True)} {v.digits(4)} {v.digits(4)}",
                    f"SO{v.digits(10)}",
                ]
            ),
        )

    def _s_invoice(self, b: _Builder) -> None:
        b.miss(
            "invoice_no",
            self.r.choice([f"INV-2024-{self.v.digits(6)}", f"RE-{self.v.digits(5)}/24", f"F{self.v.digits(9)}"]),
        )

    def _s_tracking(self, b: _Builder) -> None:
        v = self.v
        b.miss(
            "tracking_no",
            self.r.choice(
                [
                    f"1Z{v.chars(string.ascii_uppercase + string.digits, 6)}{v.digits(10)}",
                    f"9400 {v.digits(4)} {v.digits(4)} {v.digits(4)} {v.digits(4)} {v.digits(2)}",
                    f"JJD{v.digits(18)}",
                    f"{v.digits(4)} {v.digits(4)} {v.digits(4)}",
                ]
            ),
        )

    def _s_zip4(self, b: _Builder) -> None:
        b.miss("zip4", f"{self.v.digits(5, True)}-{self.v.digits(4)}")

    def _s_version(self, b: _Builder) -> None:
        b.miss(
            "version",
            self.r.choice([self.v.version3(), self.v.version4(), f"10.0.{self.v.digits(5, True)}.{self.v.digits(4)}"]),
        )

    def _s_netmask(self, b: _Builder) -> None:
        b.miss("netmask", self.v.netmask())

    def _s_gitremote(self, b: _Builder) -> None:
        org = self.r.choice(["acme", "northwind", "kestrel-cloud", "data-eng"])
        repo = self.r.choice(["billing", "infra", "web-app", "ml-pipelines"])
        b.miss("git_remote", f"git@{self.r.choice(['github.com', 'gitlab.com', 'bitbucket.org'])}:{org}/{repo}.git")

    def _s_placeholder(self, b: _Builder) -> None:
        b.miss("placeholder", self.v.placeholder())

    def _s_date(self, b: _Builder) -> None:
        b.miss("plain_date", self.v.plain_date())

    def _s_ts(self, b: _Builder) -> None:
        b.miss("timestamp", self.v.timestamp())

    def _s_isbn(self, b: _Builder) -> None:
        b.miss(
            "isbn",
            self.r.choice(
                ["978-0-306-40615-7", "978-3-16-148410-0", "0-19-852663-6", "978-1-4028-9462-6", "979-10-90636-07-1"]
            ),
        )

    def _s_hexdigits(self, b: _Builder) -> None:
        b.miss("hex_digits", self.r.choice(["0123456789", "0123456789abcdef", "0123456789ABCDEF", "9876543210"]))

    def _s_docurl(self, b: _Builder) -> None:
        b.miss(
            "doc_url",
            self.r.choice(
                [
                    "https://docs.example.com/api/v2/auth",
                    "https://example.com/help/billing",
                    "http://api.example.org/users/12345",
                    "https://www.example.net/contact",
                ]
            ),
        )

    def _s_imei(self, b: _Builder) -> None:
        b.miss("imei", self.v.imei())

    def _s_uuid(self, b: _Builder) -> None:
        b.miss("uuid", self.v.uuid())

    def _s_sha(self, b: _Builder) -> None:
        b.miss("git_sha", self.v.git_sha())

    def _s_mac(self, b: _Builder) -> None:
        b.miss("mac_address", self.v.mac())

    def _s_org(self, b: _Builder) -> None:
        b.miss("not_a_person", self.r.choice(_NOT_PEOPLE))

    def _s_bic(self, b: _Builder) -> None:
        b.miss(
            "bic", self.r.choice(["DEUTDEFFXXX", "COBADEFFXXX", "BNPAFRPPXXX", "INGBNL2A", "NWBKGB2L", "BSCHESMMXXX"])
        )

    def _s_vat(self, b: _Builder) -> None:
        b.miss(
            "vat_id",
            self.r.choice(
                [
                    f"DE{self.v.digits(9, True)}",
                    f"GB{self.v.digits(9, True)}",
                    f"FR{self.v.digits(11)}",
                    f"NL{self.v.digits(9)}B01",
                ]
            ),
        )

    def _s_price(self, b: _Builder) -> None:
        b.miss(
            "amount",
            self.r.choice(
                [
                    f"{self.r.randint(1, 99)},{self.v.digits(3)}.{self.v.digits(2)}",
                    f"€{self.r.randint(10, 9999)},{self.v.digits(2)}",
                    f"${self.r.randint(1, 999)}.{self.v.digits(2)}",
                ]
            ),
        )

    def _s_ticketno(self, b: _Builder) -> None:
        b.miss(
            "ticket_no",
            self.r.choice([f"#{self.v.digits(6, True)}", f"SR-{self.v.digits(7)}", f"CASE-{self.v.digits(5)}"]),
        )

    def _s_num9(self, b: _Builder) -> None:
        b.miss("plain_9_digits", self.v.digits(9, True))

    def _s_coords(self, b: _Builder) -> None:
        b.miss("coordinates", f"{self.r.uniform(35, 60):.4f}, {self.r.uniform(-10, 20):.4f}")

    def _s_cidr(self, b: _Builder) -> None:
        b.miss("cidr_network", self.r.choice(["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "10.20.0.0/16"]))

    def _s_oid(self, b: _Builder) -> None:
        b.miss("oid", self.r.choice(["1.2.840.113549.1.1.11", "1.3.6.1.4.1.311.21.7", "2.5.4.3"]))

    def _s_appid(self, b: _Builder) -> None:
        b.miss("application_id", f"APP-2024-{self.v.digits(5)}")

    def _s_company(self, b: _Builder) -> None:
        b.text(self.r.choice(_COMPANIES)[0])

    def _s_issue(self, b: _Builder) -> None:
        b.text(self.r.choice(_TICKET_ISSUES))

    def _s_filler(self, b: _Builder) -> None:
        b.text(self.r.choice(_FILLER))

    # -- records ----------------------------------------------------------------------------
    def make(self, n: int) -> list[Record]:
        """``n`` records, kinds drawn by weight."""
        kinds = [k for k, _ in self.KINDS]
        weights = [w for _, w in self.KINDS]
        out = []
        for _ in range(n):
            kind = self.r.choices(kinds, weights)[0]
            b = _Builder()
            ctx = {"p1": self.v.person(), "p2": self.v.person()}
            getattr(self, f"_r_{kind}")(b, ctx)
            out.append(b.record(kind))
        return out

    def _pick(self, b: _Builder, ctx: dict[str, Person], pool: list[str], k: int, sep: str = " ") -> None:
        for i, template in enumerate(self.r.sample(pool, min(k, len(pool)))):
            if i:
                b.text(sep)
            self.fill(b, template, ctx)

    _PROSE_PII = [
        "You can reach me on {phone} during office hours.",
        "My mobile is {phone}, my desk line is {phone}.",
        "Please call {p2} on {phone} if I am not available.",
        "The card I used was {card}, expiry 09/27.",
        "I tried a second card, {card}, which was also declined.",
        "Please refund to IBAN {iban} (BIC {bic}).",
        "Our account for the direct debit is {iban}.",
        "For the background check: SSN {ssn}.",
        "My National Insurance number is {nino}.",
        "NI number: {nino}",
        "The login attempts came from {ip4} and {ip6}.",
        "The request was sent from {ip}.",
        "I live at {address}.",
        "Please send the replacement to {address}.",
        "My colleague {p2} ({email}) is copied in.",
        "For identity verification: {passport}, {dob}.",
        "The applicant ({p2}) gave {passport} and {dob}.",
        "Customer's {dob}; {passport}.",
        "Write to me at {p1mail} or {email}.",
        "{p2t} approved the change on {date}.",
        "I spoke with {p2last} on the phone yesterday.",
        "The card on file is {card} and the backup is {card}.",
        "Phone: {tel}",
        "She asked us to use {p2} as the emergency contact, {phone}.",
    ]
    _PROSE_MISS = [
        "Your order {order} ships with tracking number {tracking}.",
        "This concerns invoice {invoice} from {date}.",
        "The number {badcard} was rejected by the terminal as invalid.",
        "The IBAN {badiban} failed validation, so the transfer was not made.",
        "The test data used {badssn} as a dummy social security number.",
        "The form example shows {badnino} as a sample NI number.",
        "Post it to the box office, ZIP {zip4}.",
        "We are on version {version} of the app.",
        "Ticket {ticketno} was merged with {ticketno}.",
        "See {docurl} for the API guide.",
        "The device IMEI is {imei}.",
        "The total came to {price} including tax.",
        "Reference {uuid} in the reply.",
        "We shared the spreadsheet in {org} and discussed it on {org}.",
        "The meeting moved to {date}.",
        "The book, ISBN {isbn}, arrived damaged.",
        "Our VAT number is {vat}.",
        "Store location: {coords}.",
        "The customer number is {num9}.",
        "Subnet mask {netmask}, gateway on the same network.",
        "Nothing in this ticket was changed since {ts}.",
        "The passport office was closed on {date}, so the appointment moved.",
        "The account was opened on {date} and renewed on {date}.",
    ]

    def _prose(self, b: _Builder, ctx: dict[str, Person], pii: int, miss: int) -> None:
        pool = [(t, True) for t in self.r.sample(self._PROSE_PII, pii)]
        pool += [(t, False) for t in self.r.sample(self._PROSE_MISS, miss)]
        pool += [(self.r.choice(_FILLER), False)]
        self.r.shuffle(pool)
        for i, (t, _) in enumerate(pool):
            if i:
                b.text(" ")
            self.fill(b, t, ctx)

    def _r_ticket(self, b: _Builder, ctx: dict[str, Person]) -> None:
        self.fill(b, "Ticket {ticketno} | Priority: normal | Opened {ts}\nRequester: {p1} <{p1mail}>\nSubject: ", ctx)
        b.text(self.r.choice(["Payment problem", "Cannot log in", "Delivery", "Account change", "Refund"]) + "\n\n")
        self.fill(b, "{issue} ", ctx)
        self._prose(b, ctx, self.r.randint(2, 4), self.r.randint(2, 3))
        self.fill(b, "\n\nThanks,\n{p1}\n", ctx)

    def _r_email(self, b: _Builder, ctx: dict[str, Person]) -> None:
        company, domain = self.r.choice(_COMPANIES)
        self.fill(b, "From: {p1} <{p1mail}>\nTo: ", ctx)
        b.plant("email", self.v.role_email(domain), "email:role")
        self.fill(b, "\nDate: {ts}\nSubject: Re: ", ctx)
        b.text(
            self.r.choice(
                ["your request", "contract renewal", "missing payment", "address change", "onboarding documents"]
            )
        )
        greeting = self.r.choice(["Hello,", "Good morning,", "Dear {p2t},", "Dear {p2last},", "Hi all,", "Guten Tag,"])
        b.text("\n\n")
        self.fill(b, greeting + "\n\n", ctx)
        self._prose(b, ctx, self.r.randint(2, 4), self.r.randint(1, 3))
        b.text("\n\nBest regards,\n")
        self.fill(b, "{p1}\n", ctx)
        b.text(
            self.r.choice(["Head of Finance", "Office Manager", "Customer Support", "Senior Engineer"])
            + f", {company}\n"
        )
        self.fill(b, self.r.choice(["Tel. {phone}\n", "Mobile: {phone} | Office: {phone}\n", "{phone}\n"]), ctx)
        if self.r.random() < 0.6:
            self.fill(b, "{address}\n", ctx)

    def _r_chat(self, b: _Builder, ctx: dict[str, Person]) -> None:
        lines = []
        for i in range(self.r.randint(5, 9)):
            speaker = "{p1}" if i % 2 == 0 else "{p2}"
            hh, mm = 9 + i // 6, (7 * i) % 60
            if self.r.random() < 0.45:
                content = self.r.choice(
                    [
                        "my number is {phone}",
                        "the box is on {ip}, user admin",
                        "use this token for now: {token}",
                        "prod db password is {password}, rotate it after",
                        "new address: {address}",
                        "email me at {p1mail}",
                        "remote is {gitremote}",
                        "we are on {version}, mask {netmask}",
                        "ref {uuid}, commit {sha}",
                        "card was {card}",
                        "the failing one was {badcard}",
                        "set the token to {placeholder} in the example",
                        "ping {p2} about it, {p2mail}",
                    ]
                )
            else:
                content = self.r.choice(_CHAT_LINES)
            lines.append(f"[{hh:02d}:{mm:02d}] {speaker}: {content}")
        self.fill(b, "\n".join(lines) + "\n", ctx)

    def _r_crm(self, b: _Builder, ctx: dict[str, Person]) -> None:
        self.fill(
            b, self.r.choice(["Contact: {p1rev}\n", "Contact: {p1}\n", "Account owner: {p2}\nContact: {p1t}\n"]), ctx
        )
        self.fill(b, "Last activity: {date}\n\nNotes: ", ctx)
        self.fill(
            b, self.r.choice(["Spoke with {p1} ({phone}). ", "Call with {p1t}. ", "{p1} emailed from {p1mail}. "]), ctx
        )
        self._prose(b, ctx, self.r.randint(2, 4), self.r.randint(1, 3))
        self.fill(
            b,
            self.r.choice(["\nFollow-up on {date}.", "\nNext step: send quote {invoice}.", "\nMoved to {address}."]),
            ctx,
        )
        b.text("\n")

    _ENV_PII = [
        "DATABASE_URL=postgres://app:{urlpw}@{ip4}:5432/orders",
        "DB_PASSWORD={password}",
        "POSTGRES_PASSWORD={password}",
        "SMTP_PASSWORD={password}",
        "REDIS_URL=redis://default:{urlpw}@cache.internal:6379/0",
        "JWT_SECRET={password}",
        "SESSION_SECRET={password}",
        "API_TOKEN={tok_jwt}",
        "GITHUB_TOKEN={tok_github}",
        "STRIPE_SECRET_KEY={tok_stripe}",
        "OPENAI_API_KEY={tok_openai}",
        "ANTHROPIC_API_KEY={tok_anthropic}",
        "HF_TOKEN={tok_huggingface}",
        "AWS_ACCESS_KEY_ID={tok_aws_key_id}",
        "AWS_SECRET_ACCESS_KEY={awssecret}",
        "GITLAB_TOKEN={tok_gitlab}",
        "SLACK_BOT_TOKEN={tok_slack}",
        "NPM_TOKEN={tok_npm}",
        "PYPI_API_TOKEN={tok_pypi}",
        "SENDGRID_API_KEY={tok_sendgrid}",
        "GOOGLE_MAPS_API_KEY={tok_google}",
        "ADMIN_EMAIL={email}",
        "SUPPORT_PHONE={phone}",
        "SERVER_IP={ip}",
    ]
    _ENV_MISS = [
        "DB_PASSWORD={placeholder}",
        "API_TOKEN={placeholder}",
        "APP_VERSION={version}",
        "TOKEN_TTL_SECONDS={!config_value:3600}",
        "PASSWORD_MIN_LENGTH={!config_value:12}",
        "SECRET_KEY_FILE={!config_value:/run/secrets/app_key}",
        "LOG_LEVEL=info",
        "NETMASK={netmask}",
        "GIT_REMOTE={gitremote}",
        "BUILD_SHA={sha}",
        "DOCS_URL={docurl}",
        "REQUEST_ID={uuid}",
        "ALLOWED_NETWORK={cidr}",
        "CHARSET_DIGITS={hexdigits}",
    ]

    def _r_env(self, b: _Builder, ctx: dict[str, Person]) -> None:
        b.text(f"# {self.r.choice(['production', 'staging', 'local'])} settings\n")
        lines = self.r.sample(self._ENV_PII, self.r.randint(3, 6)) + self.r.sample(self._ENV_MISS, self.r.randint(3, 5))
        self.r.shuffle(lines)
        self.fill(b, "\n".join(lines) + "\n", ctx)
        if self.r.random() < 0.15:
            b.text('PRIVATE_KEY="')
            b.plant("secret", self.v.private_key(), "secret:private_key")
            b.text('"\n')

    def _r_yaml(self, b: _Builder, ctx: dict[str, Person]) -> None:
        self.fill(b, "service:\n  name: orders\n  version: {version}\n  owner: {p1mail}\n", ctx)
        self.fill(b, "database:\n  host: {ip}\n  port: 5432\n  user: orders\n", ctx)
        self.fill(
            b,
            self.r.choice(["  password: {password}\n", '  password: "{password}"\n', "  password: {placeholder}\n"]),
            ctx,
        )
        self.fill(b, "network:\n  netmask: {netmask}\n  allowed: {cidr}\n", ctx)
        if self.r.random() < 0.6:
            self.fill(b, "smtp:\n  username: {roleemail}\n  password: '{password}'\n", ctx)
        if self.r.random() < 0.6:
            self.fill(b, "integrations:\n  github_token: {tok_github}\n  webhook_secret: {password}\n", ctx)
        if self.r.random() < 0.4:
            self.fill(b, "ci:\n  npm_token: {placeholder}\n  commit: {sha}\n  repo: {gitremote}\n", ctx)
        if self.r.random() < 0.3:
            self.fill(b, "contacts:\n  - name: {p2}\n    phone: '{phone}'\n", ctx)

    def _r_json(self, b: _Builder, ctx: dict[str, Person]) -> None:
        self.fill(b, '{\n  "client_id": "{uuid}",\n  "client_secret": "{password}",\n', ctx)
        self.fill(b, self.r.choice(['  "api_key": "{token}",\n', '  "api_key": "{placeholder}",\n']), ctx)
        self.fill(b, '  "endpoint": "{docurl}",\n  "version": "{version}",\n', ctx)
        self.fill(b, '  "customer": {\n    "name": "{p1}",\n    "email": "{p1mail}",\n    "phone": "{phone}",\n', ctx)
        if self.r.random() < 0.5:
            self.fill(b, '    "billing_address": "{address}",\n    "iban": "{iban}",\n', ctx)
        if self.r.random() < 0.4:
            self.fill(b, '    "card": "{card}",\n    "order": "{order}",\n', ctx)
        self.fill(b, '    "last_ip": "{ip}",\n    "created": "{ts}"\n  }\n}\n', ctx)

    _SHELL_PII = [
        "export GITHUB_TOKEN={tok_github}",
        "export AWS_SECRET_ACCESS_KEY={awssecret}",
        "mysql -u root -p{password} -h {ip4} shop",
        "ssh deploy@{ip}",
        "ssh -i ~/.ssh/id_ed25519 ubuntu@{ip4} -p 2222",
        "curl -H 'Authorization: Bearer {token}' https://api.kestrelcloud.dev/v1/jobs",
        "psql postgresql://report:{urlpw}@db.internal:5432/warehouse",
        "huggingface-cli login --token {tok_huggingface}",
        "npm config set //registry.npmjs.org/:_authToken {tok_npm}",
        "git config user.email {p1mail}",
        'git commit --author="{p1} <{p1mail}>" -m "fix billing export"',
        "ping -c 3 {ip}",
        "docker login -u ci-bot -p {password} registry.kestrelcloud.dev",
    ]
    _SHELL_MISS = [
        "git remote add origin {gitremote}",
        "pip install numpy=={version}",
        "export DB_PASSWORD={placeholder}",
        "ifconfig eth0 netmask {netmask}",
        "git checkout {sha}",
        "ls -la /var/log",
        "kubectl get pods -n payments",
        "ip route add {cidr} via {ip4}",
        "echo {!code_ref:$DB_PASSWORD} | wc -c",
        "curl {docurl}",
        "python -c 'print(\"{hexdigits}\")'",
        "date -d '{date}'",
    ]

    def _r_shell(self, b: _Builder, ctx: dict[str, Person]) -> None:
        lines = self.r.sample(self._SHELL_PII, self.r.randint(2, 4)) + self.r.sample(
            self._SHELL_MISS, self.r.randint(3, 5)
        )
        self.r.shuffle(lines)
        start = self.r.randint(100, 1900)
        for i, line in enumerate(lines):
            b.text(f"{start + i:5d}  ")
            self.fill(b, line + "\n", ctx)

    _LOG_PII = [
        "INFO auth: login ok user={p1mail} ip={ip}",
        "WARN auth: 5 failed logins for {email} from {ip4}",
        "INFO payments: charge card={card} amount=49.90 status=declined",
        "DEBUG http: POST /api/v1/token Authorization=Bearer {tok_jwt}",
        "ERROR db: connection to postgres://svc:{urlpw}@{ip4}/main refused",
        'INFO crm: updated contact name="{p1}" phone="{phone}"',
        "INFO sshd: Accepted publickey for deploy from {ip} port 51432",
        "INFO kyc: verified {p2} {dob}",
    ]
    _LOG_MISS = [
        "INFO http: GET /health 200 12ms request_id={uuid}",
        "INFO build: version={version} commit={sha}",
        "DEBUG net: iface eth0 mask {netmask} mac {mac}",
        "INFO orders: created order {order} invoice {invoice}",
        "INFO shipping: label {tracking} printed",
        "WARN config: DB_PASSWORD is {placeholder}, using default",
        "INFO worker: pid=48213 processed 1048576 bytes in 0.734s",
        "INFO git: pulled {gitremote}",
        "DEBUG ldap: oid {oid}",
    ]

    def _r_log(self, b: _Builder, ctx: dict[str, Person]) -> None:
        lines = self.r.sample(self._LOG_PII, self.r.randint(2, 4)) + self.r.sample(self._LOG_MISS, self.r.randint(3, 5))
        self.r.shuffle(lines)
        for line in lines:
            self.fill(b, "{ts} " + line + "\n", ctx)

    _CODE_PII = [
        'client = OpenAI(api_key="{tok_openai}")',
        'AWS_SECRET_ACCESS_KEY = "{awssecret}"',
        'conn = psycopg2.connect(host="{ip4}", user="etl", password="{password}")',
        'SLACK_TOKEN = "{tok_slack}"',
        'ADMIN_CONTACT = "{p1} <{p1mail}>"',
        'headers = {"Authorization": "Bearer {tok_jwt}"}',
        'engine = create_engine("mysql+pymysql://app:{urlpw}@{ip4}/shop")',
    ]
    _CODE_MISS = [
        "password = {!code_ref:dest.password}",
        "password = {!code_ref:getpass.getpass()}",
        'token = {!code_ref:request.headers.get("X-Api-Token")}',
        'db_password = {!code_ref:os.environ["DB_PASSWORD"]}',
        "PASSWORD_MIN_LENGTH = {!config_value:12}",
        'DIGITS = "{hexdigits}"',
        '__version__ = "{version}"',
        'REPO = "{gitremote}"',
        'API_KEY = "{placeholder}"',
        'SAMPLE_ISBN = "{isbn}"',
        'DEFAULT_NETMASK = "{netmask}"',
        'BASE_URL = "{docurl}"',
        "self.secret = {!code_ref:secret}",
        'COMMIT = "{sha}"',
    ]

    def _r_code(self, b: _Builder, ctx: dict[str, Person]) -> None:
        b.text('"""Nightly export job."""\nimport os\n\n')
        lines = self.r.sample(self._CODE_PII, self.r.randint(1, 3)) + self.r.sample(
            self._CODE_MISS, self.r.randint(3, 6)
        )
        self.r.shuffle(lines)
        self.fill(b, "\n".join(lines) + "\n", ctx)
        if self.r.random() < 0.2:
            b.text('\nKEY = """')
            b.plant("secret", self.v.private_key(), "secret:private_key")
            b.text('"""\n')

    def _r_form(self, b: _Builder, ctx: dict[str, Person]) -> None:
        self.fill(b, "APPLICATION FORM (version {version})\nApplication ID: {appid}\nSubmitted: {date}\n\n", ctx)
        self.fill(b, "Full name: {p1}\n", ctx)
        fields = [
            "{dob}\n",
            "{passport}\n",
            "Home address: {address}\n",
            "Phone: {phone}\n",
            "E-mail: {p1mail}\n",
            "Social Security Number: {ssn}\n",
            "National Insurance No.: {nino}\n",
            "Bank account (IBAN): {iban}\n",
            "Emergency contact: {p2}, {phone}\n",
            "Passport issued: {date}\n",
            "Customer no.: {num9}\n",
        ]
        for f in self.r.sample(fields, self.r.randint(4, 8)):
            self.fill(b, f, ctx)

    def _r_invoice(self, b: _Builder, ctx: dict[str, Person]) -> None:
        self.fill(b, "{company}\n", ctx)
        self.fill(
            b,
            "{maddress}\nVAT ID {vat}\n\nINVOICE {invoice}\nDate: {date}\nOrder: {order}\n\n"
            "Bill to:\n{p1}\n{maddress}\n\n",
            ctx,
        )
        self.fill(b, "Item                      Qty    Price\nSupport plan (annual)       1    {price}\n\n", ctx)
        self.fill(
            b,
            self.r.choice(
                [
                    "Pay by transfer to IBAN {iban}, BIC {bic}.\n",
                    "Charged to card {card}.\n",
                    "Paid by card ending 4242.\n",
                ]
            ),
            ctx,
        )
        self.fill(b, self.r.choice(["Questions: {roleemail} or {phone}.\n", "Shipped with {tracking}.\n"]), ctx)

    def _r_letter(self, b: _Builder, ctx: dict[str, Person]) -> None:
        self.fill(b, "{p1}\n{maddress}\n\n{date}\n\n{p2}\n{maddress}\n\nDear {p2last},\n\n", ctx)
        self._prose(b, ctx, self.r.randint(1, 3), self.r.randint(1, 3))
        self.fill(b, "\n\nYours sincerely,\n\n{p1}\n", ctx)


def make_corpus(n: int, seed: int = 1) -> list[Record]:
    """``n`` labelled records from ``seed``; the same arguments give the same corpus."""
    return CorpusGenerator(seed).make(n)
