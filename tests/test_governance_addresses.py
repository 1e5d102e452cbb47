"""Street addresses: exact spans on realistic records (US, UK, DE, FR, NL), near misses, speed."""

from __future__ import annotations

import re
import time

import pytest

from polyadapt.governance.addresses import StreetAddressScanner
from polyadapt.governance.findings import Finding, Scanner

#: Records with [[...]] around each address (the whole address is the expected span).
RECORDS = """
Please ship the replacement to [[1600 Pennsylvania Ave NW, Washington, DC 20500]] by Friday.
---
My new address is [[221B Baker St, London NW1 6XE]]. Please update your records.
---
Customer moved to [[742 Evergreen Terrace, Springfield, IL 62704]] last month.
---
Return label: [[P.O. Box 123, Austin, TX 78701]]
---
The office is at [[500 Main St, Suite 200, Boise, ID 83702]].
---
Deliver to [[88 Oak Street Apt 4B, Brooklyn, NY 11201]] between 9 and 5.
---
We met at the cafe on [[20 Oxford St]] near the station.
---
Send the contract to [[10 Downing Street, London SW1A 2AA]].
---
Billing address:
[[Flat 3, 45 Queen's Road
Bristol BS8 1QU]]
---
Unsere neue Adresse: [[Hauptstraße 5, 10115 Berlin]].
---
Bitte an [[Berliner Str. 12a, 80331 München]] liefern.
---
Bitte schicken Sie die Unterlagen an [[Goethestraße 14, 60313 Frankfurt am Main]].
---
Le colis doit être livré au [[12 rue de la Paix, 75002 Paris]].
---
Adresse de facturation : [[45 avenue des Champs-Élysées, 75008 Paris]]
---
Het kantoor zit op [[Damrak 1, 1012 LG Amsterdam]].
---
Graag leveren op [[Keizersgracht 123, 1015 CJ Amsterdam]].
---
Ticket 4411: customer at [[350 Fifth Avenue, New York, NY 10118]] reports no signal.
---
Please remove [[PO Box 4410]] from my profile, I no longer use it.
---
Our warehouse: [[Unit 7, 14 Harbour Road, Leeds LS1 4DY]].
---
I live at [[33 West 34th Street, New York, NY 10001]], third floor.
---
Moved from [[Lindenallee 22, 50968 Köln]] to [[Marktplatz 3, 69117 Heidelberg]].
---
Can you send a technician to [[1234 Elm Street, Apt 5, Columbus, OH 43215]]?
---
Our Chicago store is at [[233 S Wacker Dr, Chicago, IL 60606]].
---
please send it to [[55 Water St, Suite 12, Manchester M3 4JQ]] thanks
---
Our London office moved to [[30 St Mary Axe, London EC3A 8BF]].
---
The courier tried [[9 Harbor Blvd]] twice but nobody answered.
---
Rendez-vous au [[3 place de la Bourse, 33000 Bordeaux]] à 14h.
---
Our Halifax office: [[1800 Argyle Street, Suite 801, Halifax, NS B3J 3N8]].
---
Mail it to [[42 Wattle Grove, Carlton VIC 3053]] please.
---
[[17 Kookaburra Rise
Ballarat, VIC, 3350]]
---
Ship to [[Unit 4 221 Harbour Esplanade
Docklands, VIC 3008]] before noon.
---
Postal address:
[[12 Kowhai Crescent
RD 2
Matamata 3472]]
---
[[8 Tui Rise
Havelock North 4130]]
---
Bitte an [[Mariahilfer Straße 45, 1060 Wien]] senden.
---
Lieferadresse: [[Bahnhofstrasse 21
8001 Zürich]]
---
Notre adresse : [[rue du Rhône 48, 1204 Genève]].
---
Het nieuwe adres is [[Frankrijklei 12
2000 Antwerpen]].
---
Send it to [[7 Harcourt Street, Dublin 2, D02 XY45]] by Monday.
---
Graag naar [[Hinthamerstraat 74, 5211 MS 's-Hertogenbosch]] sturen.
---
Our office is at [[14 Holywell Hill, St. Albans AL1 1BT]].
---
Courier to [[Flat 12, MG Road, Bengaluru 560001]] please.
---
Address:
[[H.No. 4-17, Gandhi Nagar
Warangal - 506002]]
---
[[208
Lake View Colony
Nashik-422005]]
"""

#: Texts with numbers next to capitalised words, street words or units, and no address.
NEAR_MISSES = [
    "I finally beat version 2 Street Fighter on hard mode.",
    "Read chapter 12 of the book before Monday.",
    "There are 5 main points in the proposal.",
    "See Section 3 Paragraph 4 of the agreement.",
    "The meeting is at 10:30 in room 4.",
    "Add 250 ml of milk and 2 tbsp of sugar.",
    "The server has 64 GB RAM and 2 TB storage.",
    "Flight BA 117 departs at 18:45 from Terminal 5.",
    "The patient was given 500 mg of amoxicillin 3 times a day.",
    "The stock rose 4 points on Wall Street today.",
    "Version 3 Place holders are now supported in templates.",
    "Python 3 Way of doing things is different.",
    "Step 2: Drive the screws into the frame.",
    "12 High Court judges signed the letter.",
    "We need 2 Main Street banners for the parade.",
    "We have 4 Oak Street tickets left for the concert.",
    "Route 66 is a famous highway.",
    "The 5 Avenue Q songs were great.",
    "There are 12 Park Rangers on duty.",
    "Chapter 4 Street Smarts covers negotiation.",
    "The 4 Seasons Hotel is fully booked.",
    "Order ORD-2023 Main St shipment is late.",
    "Version 2 Release Notes, Austin, TX 78701 edition.",
    "The 3 Musketeers\nParis 1844",
    "Best of 5 Albums\nLondon 1987\n",
    "We sold 40 Copies in Perth WA 6000 units ago.",
    "We sold 12, Widgets, Mumbai 400001 units",
    "Ticket 12, Release Notes, Version 123456",
]


def labelled(records: str) -> list[tuple[str, list[str]]]:
    """(text, expected address strings) for each record of ``records``."""
    out = []
    for record in records.strip("\n").split("\n---\n"):
        expected = re.findall(r"\[\[(.+?)\]\]", record, flags=re.S)
        out.append((record.replace("[[", "").replace("]]", ""), expected))
    return out


@pytest.fixture(scope="module")
def scanner() -> StreetAddressScanner:
    return StreetAddressScanner()


def test_it_is_a_scanner(scanner):
    assert isinstance(scanner, Scanner)
    assert scanner.name == "address" and scanner.types == ("address",)


@pytest.mark.parametrize(("text", "expected"), labelled(RECORDS), ids=lambda v: v[:40] if isinstance(v, str) else "")
def test_exact_spans_on_realistic_records(scanner, text, expected):
    findings = scanner.scan(text)
    assert [text[f.start : f.end] for f in findings] == expected
    assert all(f == Finding("address", f.start, f.end, "address") for f in findings)


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_are_not_addresses(scanner, text):
    assert scanner.scan(text) == []


def test_an_address_inside_a_sentence_is_found(scanner):
    text = "I walked past 20 Oxford St on my way home."
    assert [text[f.start : f.end] for f in scanner.scan(text)] == ["20 Oxford St"]


def test_records_without_an_address_cost_little(scanner):
    # the governance scanners together must do >= 2,000 records/s; this one takes a small share
    records = [
        f"Order {i} for customer {i * 7} was refunded on 3 March after 2 failed deliveries. "
        "The invoice total was 49.99 EUR and the ticket was closed by the support team."
        for i in range(2000)
    ]
    start = time.perf_counter()
    found = [scanner.scan(record) for record in records]
    elapsed = time.perf_counter() - start
    assert not any(found)
    assert elapsed / len(records) < 0.0002, f"{1e6 * elapsed / len(records):.0f} us per record"
