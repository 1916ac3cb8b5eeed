"""Compliance audit: can any contact be called at a minute the law forbids?

Run: ``uv run --group reference python tools/compliance_audit.py [--contacts 3000] [--seed 7] [--days 730]
[--from 2026-01-01]``. It generates a seeded contacts file with the truth of every contact, imports it with the
real ``callaro import`` into a throw-away installation (temporary CALLARO_HOME and CALLARO_CONFIG), exports every
member's open intervals with ``callaro audience audit --windows`` and counts, with a reference written here
independently of the pipeline, every open minute that is illegal. Exit code 1 if any minute is illegal.

Truth (what the reference believes about each generated person; nothing here reads the pipeline's own data):

* **Where the person is.** Every person lives at an address: a US ZIP (its point is the ZIP centroid of the Census
  ZCTA gazetteer as shipped by ``zip2info``) or a Canadian place (a hand-placed city point, postal code of that
  city). The address zone is ``timezonefinder`` (timezone-boundary-builder polygons) at that point.
* **Truth zones** = the address zone PLUS the zone of the phone's home when the phone is from elsewhere. Phones
  are drawn from ``phonenumbers``' own exchange-level geography: a number is built on an NPA-NXX whose geocoder
  description is the city of one of the anchor places below, so its home point is that anchor's ZIP/place point
  (zone again by timezonefinder). A person whose phone comes from another anchor (a person who moved, a mobile from
  elsewhere) is in both zones; the contract's rule is then "callable only when legal in all of them". Local
  numbers on an overlay area code whose exchanges phonenumbers geocodes only to a state (364, 448, 689, ...)
  and toll-free numbers add no zone: the person is at the address. Zones are compared by wall clock: two IANA
  names are the same *clock class* when their UTC offsets agree at every hour of the audited period (plus two
  days either side), so America/Indiana/Indianapolis is "Eastern" and America/Creston is "MST (no DST)".
* **Truth states** (whose hour rules apply) = the area-code state(s) from ``phonenumbers``' geocoder description
  of the number (``"Paducah, KY"`` → KY, ``"Kentucky"`` → KY; not hand-written per area code), the address state
  and the ZIP's state (the anchor's state; a ZIP3 never crosses a state line here). Odd spellings and missing
  state/ZIP columns change only what the file says, never the truth.
* **Legal minute.** A minute is legal only if, in EVERY truth zone, local time is within 08:00–21:00 (TCPA,
  47 CFR 64.1200(c)(1)) and within the hours of EVERY truth state (table ``STATE_RULES`` below, coded from the
  statutes; Sundays and state legal holidays closed where the statute says, holidays from the ``holidays``
  package with observed days; Mississippi's hours in Central *Standard* Time), and, when the phone or the
  address is Canadian, within the CRTC Unsolicited Telecommunications Rules' hours (weekdays 09:00–21:30,
  weekends 10:00–18:00, local).

The audit campaign allows every hour of every day and requires neither the national DNC list nor consent, so
only the legal rules narrow the windows; a second pass re-exports with the default window (09:00–20:00 Mon–Fri).
Counting is interval arithmetic: per truth profile (zones × states × Canada) the legal set is a sorted list of
UTC intervals, and the legal part of an exported interval [a, b) is L(b) − L(a) with L the cumulative legal
measure (numpy searchsorted), so 3,000 contacts × 730 days take seconds.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import timezone as dt_timezone
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import phonenumbers
import polars as pl
from phonenumbers import geocoder

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------------------------------------------
# Places. US anchors: (city exactly as phonenumbers' geocoder names it, state, a ZIP of that city). Canadian
# anchors: (city, province, postal FSA, latitude, longitude). Zone-split areas are marked "split".
# --------------------------------------------------------------------------------------------------------------
US_ANCHORS: list[tuple[str, str, str, bool]] = [
    ("Birmingham", "AL", "35203", False),
    ("Montgomery", "AL", "36104", False),
    ("Mobile", "AL", "36602", False),
    ("Huntsville", "AL", "35801", False),
    ("Anchorage", "AK", "99501", True),
    ("Juneau", "AK", "99801", True),
    ("Fairbanks", "AK", "99701", True),
    ("Nome", "AK", "99762", True),
    ("Adak", "AK", "99546", True),
    ("Phoenix", "AZ", "85004", True),
    ("Tucson", "AZ", "85701", True),
    ("Flagstaff", "AZ", "86001", True),
    ("Window Rock", "AZ", "86515", True),
    ("Chinle", "AZ", "86503", True),
    ("Kayenta", "AZ", "86033", True),
    ("Tuba City", "AZ", "86045", True),
    ("Yuma", "AZ", "85364", True),
    ("Little Rock", "AR", "72201", False),
    ("Fayetteville", "AR", "72701", False),
    ("Los Angeles", "CA", "90012", False),
    ("San Francisco", "CA", "94102", False),
    ("San Diego", "CA", "92101", False),
    ("Sacramento", "CA", "95814", False),
    ("Fresno", "CA", "93721", False),
    ("Denver", "CO", "80202", False),
    ("Colorado Springs", "CO", "80903", False),
    ("Hartford", "CT", "06103", False),
    ("New Haven", "CT", "06510", False),
    ("Wilmington", "DE", "19801", False),
    ("Dover", "DE", "19901", False),
    ("Washington", "DC", "20001", False),
    ("Miami", "FL", "33130", False),
    ("Orlando", "FL", "32801", False),
    ("Tampa", "FL", "33602", False),
    ("Jacksonville", "FL", "32202", False),
    ("Tallahassee", "FL", "32301", True),
    ("Pensacola", "FL", "32501", True),
    ("Panama City", "FL", "32401", True),
    ("Fort Walton Bch", "FL", "32548", True),
    ("Atlanta", "GA", "30303", False),
    ("Savannah", "GA", "31401", False),
    ("Honolulu", "HI", "96813", False),
    ("Hilo", "HI", "96720", False),
    ("Boise", "ID", "83702", True),
    ("Coeur d'Alene", "ID", "83814", True),
    ("Lewiston", "ID", "83501", True),
    ("Idaho Falls", "ID", "83402", True),
    ("Pocatello", "ID", "83201", True),
    ("Chicago", "IL", "60601", False),
    ("Springfield", "IL", "62701", False),
    ("Peoria", "IL", "61602", False),
    ("Indianapolis", "IN", "46204", True),
    ("Gary", "IN", "46402", True),
    ("Hammond", "IN", "46320", True),
    ("Evansville", "IN", "47708", True),
    ("Fort Wayne", "IN", "46802", True),
    ("South Bend", "IN", "46601", True),
    ("Knox", "IN", "46534", True),
    ("Valparaiso", "IN", "46383", True),
    ("Michigan City", "IN", "46360", True),
    ("Jasper", "IN", "47546", True),
    ("Tell City", "IN", "47586", True),
    ("Des Moines", "IA", "50309", False),
    ("Cedar Rapids", "IA", "52401", False),
    ("Wichita", "KS", "67202", True),
    ("Topeka", "KS", "66603", True),
    ("Goodland", "KS", "67735", True),
    ("Syracuse", "KS", "67878", True),
    ("Garden City", "KS", "67846", True),
    ("Sharon Springs", "KS", "67758", True),
    ("Tribune", "KS", "67879", True),
    ("Louisville", "KY", "40202", True),
    ("Lexington", "KY", "40507", True),
    ("Paducah", "KY", "42001", True),
    ("Bowling Green", "KY", "42101", True),
    ("Owensboro", "KY", "42301", True),
    ("Elizabethtown", "KY", "42701", True),
    ("Pikeville", "KY", "41501", True),
    ("Somerset", "KY", "42501", True),
    ("New Orleans", "LA", "70112", False),
    ("Baton Rouge", "LA", "70801", False),
    ("Shreveport", "LA", "71101", False),
    ("Portland", "ME", "04101", False),
    ("Bangor", "ME", "04401", False),
    ("Baltimore", "MD", "21202", False),
    ("Annapolis", "MD", "21401", False),
    ("Boston", "MA", "02108", False),
    ("Worcester", "MA", "01608", False),
    ("Springfield", "MA", "01103", False),
    ("Detroit", "MI", "48226", True),
    ("Grand Rapids", "MI", "49503", True),
    ("Lansing", "MI", "48933", True),
    ("Marquette", "MI", "49855", True),
    ("Iron Mountain", "MI", "49801", True),
    ("Menominee", "MI", "49858", True),
    ("Ironwood", "MI", "49938", True),
    ("Escanaba", "MI", "49829", True),
    ("Minneapolis", "MN", "55401", False),
    ("Saint Paul", "MN", "55101", False),
    ("Duluth", "MN", "55802", False),
    ("Jackson", "MS", "39201", False),
    ("Gulfport", "MS", "39501", False),
    ("St. Louis", "MO", "63101", False),
    ("Kansas City", "MO", "64106", False),
    ("Billings", "MT", "59101", False),
    ("Missoula", "MT", "59801", False),
    ("Omaha", "NE", "68102", True),
    ("Lincoln", "NE", "68508", True),
    ("North Platte", "NE", "69101", True),
    ("Scottsbluff", "NE", "69361", True),
    ("Ogallala", "NE", "69153", True),
    ("Alliance", "NE", "69301", True),
    ("Las Vegas", "NV", "89101", True),
    ("Reno", "NV", "89501", True),
    ("West Wendover", "NV", "89883", True),
    ("Manchester", "NH", "03101", False),
    ("Concord", "NH", "03301", False),
    ("Newark", "NJ", "07102", False),
    ("Trenton", "NJ", "08608", False),
    ("Albuquerque", "NM", "87102", False),
    ("Santa Fe", "NM", "87501", False),
    ("New York", "NY", "10001", False),
    ("Buffalo", "NY", "14202", False),
    ("Albany", "NY", "12207", False),
    ("Rochester", "NY", "14604", False),
    ("Charlotte", "NC", "28202", False),
    ("Raleigh", "NC", "27601", False),
    ("Fargo", "ND", "58102", True),
    ("Bismarck", "ND", "58501", True),
    ("Dickinson", "ND", "58601", True),
    ("Williston", "ND", "58801", True),
    ("Minot", "ND", "58701", True),
    ("Beulah", "ND", "58523", True),
    ("Columbus", "OH", "43215", False),
    ("Cleveland", "OH", "44113", False),
    ("Cincinnati", "OH", "45202", False),
    ("Oklahoma City", "OK", "73102", False),
    ("Tulsa", "OK", "74103", False),
    ("Portland", "OR", "97204", True),
    ("Eugene", "OR", "97401", True),
    ("Ontario", "OR", "97914", True),
    ("Bend", "OR", "97701", True),
    ("Philadelphia", "PA", "19102", False),
    ("Pittsburgh", "PA", "15222", False),
    ("Harrisburg", "PA", "17101", False),
    ("Providence", "RI", "02903", False),
    ("Newport", "RI", "02840", False),
    ("Columbia", "SC", "29201", False),
    ("Charleston", "SC", "29401", False),
    ("Sioux Falls", "SD", "57104", True),
    ("Rapid City", "SD", "57701", True),
    ("Pierre", "SD", "57501", True),
    ("Aberdeen", "SD", "57401", True),
    ("Nashville", "TN", "37203", True),
    ("Memphis", "TN", "38103", True),
    ("Knoxville", "TN", "37902", True),
    ("Chattanooga", "TN", "37402", True),
    ("Crossville", "TN", "38555", True),
    ("Jackson", "TN", "38301", True),
    ("Houston", "TX", "77002", True),
    ("Dallas", "TX", "75201", True),
    ("San Antonio", "TX", "78205", True),
    ("Austin", "TX", "78701", True),
    ("El Paso", "TX", "79901", True),
    ("Amarillo", "TX", "79101", True),
    ("Lubbock", "TX", "79401", True),
    ("Midland", "TX", "79701", True),
    ("Salt Lake City", "UT", "84101", False),
    ("Provo", "UT", "84601", False),
    ("Burlington", "VT", "05401", False),
    ("Montpelier", "VT", "05602", False),
    ("Richmond", "VA", "23219", False),
    ("Virginia Beach", "VA", "23451", False),
    ("Seattle", "WA", "98101", False),
    ("Spokane", "WA", "99201", False),
    ("Charleston", "WV", "25301", False),
    ("Morgantown", "WV", "26505", False),
    ("Milwaukee", "WI", "53202", False),
    ("Madison", "WI", "53703", False),
    ("Cheyenne", "WY", "82001", False),
    ("Casper", "WY", "82601", False),
    ("San Juan", "PR", "00901", False),
]
CA_ANCHORS: list[tuple[str, str, str, float, float]] = [
    ("Toronto", "ON", "M5V", 43.6426, -79.3871),
    ("Ottawa", "ON", "K1P", 45.4215, -75.6972),
    ("Thunder Bay", "ON", "P7B", 48.3809, -89.2477),
    ("Kenora", "ON", "P9N", 49.7670, -94.4894),
    ("Atikokan", "ON", "P0T", 48.7570, -91.6216),
    ("Montreal", "QC", "H3B", 45.5019, -73.5674),
    ("Quebec City", "QC", "G1R", 46.8139, -71.2080),
    ("Blanc-Sablon", "QC", "G0G", 51.4264, -57.1314),
    ("Halifax", "NS", "B3H", 44.6488, -63.5752),
    ("Moncton", "NB", "E1C", 46.0878, -64.7782),
    ("Charlottetown", "PE", "C1A", 46.2382, -63.1311),
    ("St. John's", "NL", "A1C", 47.5615, -52.7126),
    ("Happy Valley-Goose Bay", "NL", "A0P", 53.3017, -60.3261),
    ("Winnipeg", "MB", "R3C", 49.8954, -97.1385),
    ("Regina", "SK", "S4P", 50.4452, -104.6189),
    ("Saskatoon", "SK", "S7K", 52.1332, -106.6700),
    ("Lloydminster", "AB", "T9V", 53.2783, -110.0050),
    ("Calgary", "AB", "T2P", 51.0447, -114.0719),
    ("Edmonton", "AB", "T5J", 53.5461, -113.4938),
    ("Vancouver", "BC", "V6B", 49.2827, -123.1207),
    ("Victoria", "BC", "V8W", 48.4284, -123.3656),
    ("Cranbrook", "BC", "V1C", 49.5097, -115.7688),
    ("Creston", "BC", "V0B", 49.0955, -116.5135),
    ("Dawson Creek", "BC", "V1G", 55.7596, -120.2353),
    ("Whitehorse", "YT", "Y1A", 60.7212, -135.0568),
    ("Yellowknife", "NT", "X1A", 62.4540, -114.3718),
    ("Iqaluit", "NU", "X0A", 63.7467, -68.5170),
    ("Rankin Inlet", "NU", "X0C", 62.8084, -92.0853),
    ("Cambridge Bay", "NU", "X0B", 69.1169, -105.0597),
]
# Overlay area codes whose exchanges phonenumbers geocodes only to a state: (overlay, anchor city it serves, state).
# Used only for local numbers (the person is at the address), so they add no zone to the truth.
OVERLAYS: list[tuple[str, str, str]] = [
    ("364", "Paducah", "KY"),
    ("364", "Bowling Green", "KY"),
    ("364", "Elizabethtown", "KY"),
    ("689", "Orlando", "FL"),
    ("448", "Pensacola", "FL"),
    ("448", "Tallahassee", "FL"),
    ("448", "Panama City", "FL"),
    ("907", "Adak", "AK"),
    ("907", "Nome", "AK"),
    ("775", "West Wendover", "NV"),
    ("418", "Blanc-Sablon", "QC"),
    ("867", "Cambridge Bay", "NU"),
    ("867", "Iqaluit", "NU"),
    ("787", "San Juan", "PR"),
    ("939", "San Juan", "PR"),
    ("202", "Washington", "DC"),
]
TOLL_FREE = ["800", "833", "844", "855", "866", "877", "888"]

US_STATE_NAMES = {
    "Alabama": "AL",
    "Alaska": "AK",
    "Arizona": "AZ",
    "Arkansas": "AR",
    "California": "CA",
    "Colorado": "CO",
    "Connecticut": "CT",
    "Delaware": "DE",
    "District of Columbia": "DC",
    "Washington D.C.": "DC",
    "Florida": "FL",
    "Georgia": "GA",
    "Hawaii": "HI",
    "Idaho": "ID",
    "Illinois": "IL",
    "Indiana": "IN",
    "Iowa": "IA",
    "Kansas": "KS",
    "Kentucky": "KY",
    "Louisiana": "LA",
    "Maine": "ME",
    "Maryland": "MD",
    "Massachusetts": "MA",
    "Michigan": "MI",
    "Minnesota": "MN",
    "Mississippi": "MS",
    "Missouri": "MO",
    "Montana": "MT",
    "Nebraska": "NE",
    "Nevada": "NV",
    "New Hampshire": "NH",
    "New Jersey": "NJ",
    "New Mexico": "NM",
    "New York": "NY",
    "North Carolina": "NC",
    "North Dakota": "ND",
    "Ohio": "OH",
    "Oklahoma": "OK",
    "Oregon": "OR",
    "Pennsylvania": "PA",
    "Rhode Island": "RI",
    "South Carolina": "SC",
    "South Dakota": "SD",
    "Tennessee": "TN",
    "Texas": "TX",
    "Utah": "UT",
    "Vermont": "VT",
    "Virginia": "VA",
    "Washington": "WA",
    "West Virginia": "WV",
    "Wisconsin": "WI",
    "Wyoming": "WY",
    "Puerto Rico": "PR",
}
CA_PROVINCE_NAMES = {
    "Alberta": "AB",
    "British Columbia": "BC",
    "Manitoba": "MB",
    "New Brunswick": "NB",
    "Newfoundland and Labrador": "NL",
    "Nova Scotia": "NS",
    "Ontario": "ON",
    "Prince Edward Island": "PE",
    "Quebec": "QC",
    "Saskatchewan": "SK",
    "Northwest Territories": "NT",
    "Nunavut": "NU",
    "Yukon": "YT",
}
CODE_TO_NAME = {
    code: name for name, code in {**US_STATE_NAMES, **CA_PROVINCE_NAMES}.items() if name != "Washington D.C."
}
ODD_SPELLINGS = {
    "FL": ["Fla.", "Fla", "florida ", "FLA"],
    "CA": ["Calif", "Calif.", "Cal."],
    "MA": ["Mass.", "Mass"],
    "PA": ["Penn.", "Penna."],
    "TX": ["Tex.", "Tex"],
    "NY": ["N.Y.", "new york"],
    "WA": ["Wash."],
    "KY": ["Ky.", "Kent."],
    "TN": ["Tenn.", "Tenn"],
    "AZ": ["Ariz.", "Ariz"],
    "MI": ["Mich.", "Mich"],
    "IN": ["Ind.", "Ind"],
    "ND": ["N. Dak.", "N.D."],
    "SD": ["S. Dak.", "S.D."],
    "NE": ["Nebr.", "Neb."],
    "KS": ["Kans.", "Kan."],
    "OR": ["Ore.", "Oreg."],
    "ID": ["Ida."],
    "AK": ["Alas."],
    "LA": ["La."],
    "MS": ["Miss."],
    "AL": ["Ala."],
    "RI": ["R.I."],
    "UT": ["Ut."],
    "CT": ["Conn."],
    "MD": ["Md."],
    "OK": ["Okla."],
    "MN": ["Minn."],
    "NV": ["Nev."],
    "NM": ["N. Mex.", "N.M."],
    "ON": ["Ont.", "Ontario"],
    "QC": ["Que.", "Québec", "PQ"],
    "BC": ["B.C."],
    "AB": ["Alta."],
    "SK": ["Sask."],
    "MB": ["Man."],
    "NS": ["N.S."],
    "NL": ["Nfld."],
    "NB": ["N.B."],
    "PE": ["P.E.I."],
    "YT": ["Yuk."],
    "NT": ["N.W.T."],
    "NU": ["Nvt."],
}

# Typed zone forms per clock class label (see CLASS_LABELS).
TYPED_ABBREV = {
    "Eastern": ["EST", "EDT", "ET", "E.S.T."],
    "Central": ["CST", "CDT", "CT"],
    "Mountain": ["MST", "MDT", "MT"],
    "MST (no DST)": ["MST"],
    "Pacific": ["PST", "PDT", "PT"],
    "Alaska": ["AKST", "AKDT"],
    "Hawaii": ["HST"],
    "Hawaii-Aleutian": ["HST", "HDT"],
    "AST (no DST)": ["AST"],
    "Atlantic": ["AST", "ADT"],
    "Newfoundland": ["NST", "NDT"],
    "CST (no DST)": ["CST"],
    "EST (no DST)": ["EST"],
}
TYPED_OFFSET = {
    "Eastern": ["UTC-05:00", "GMT-5", "-05:00"],
    "Central": ["UTC-06:00", "GMT-6"],
    "Mountain": ["UTC-07:00"],
    "MST (no DST)": ["UTC-07:00", "GMT-7"],
    "Pacific": ["UTC-08:00", "-08:00"],
    "Alaska": ["UTC-09:00"],
    "Hawaii": ["UTC-10:00"],
    "Hawaii-Aleutian": ["UTC-10:00"],
    "AST (no DST)": ["UTC-04:00"],
    "Atlantic": ["UTC-04:00"],
    "Newfoundland": ["UTC-03:30"],
    "CST (no DST)": ["UTC-06:00"],
    "EST (no DST)": ["UTC-05:00"],
}
TYPED_WINDOWS = {
    "Eastern": ["Eastern Standard Time", "US Eastern Standard Time"],
    "Central": ["Central Standard Time"],
    "Mountain": ["Mountain Standard Time"],
    "MST (no DST)": ["US Mountain Standard Time"],
    "Pacific": ["Pacific Standard Time"],
    "Alaska": ["Alaskan Standard Time"],
    "Hawaii": ["Hawaiian Standard Time"],
    "Hawaii-Aleutian": ["Aleutian Standard Time"],
    "AST (no DST)": ["SA Western Standard Time"],
    "Atlantic": ["Atlantic Standard Time"],
    "Newfoundland": ["Newfoundland Standard Time"],
    "CST (no DST)": ["Canada Central Standard Time"],
    "EST (no DST)": ["SA Pacific Standard Time"],
}
TYPED_WORDS = {
    "Eastern": ["Eastern", "Eastern Time", "America/New York"],
    "Central": ["Central", "Central Time"],
    "Mountain": ["Mountain", "Mountain Time"],
    "Pacific": ["Pacific", "Pacific Time", "America/Los Angeles"],
    "Alaska": ["Alaska"],
    "Hawaii": ["Hawaii"],
    "Atlantic": ["Atlantic"],
}

# --------------------------------------------------------------------------------------------------------------
# Hour rules, coded from the statutes (pointers for counsel; independently of callaro_pipeline/core/reference).
# hours: (start, end) minutes after local midnight, [start, end); days: weekday (0 = Mon) -> hours;
# closed: weekdays with no calls; holidays: the state's legal holidays closed (holidays package, observed days);
# clock: a fixed clock the hours are set in (else the contact's local time in each zone).
# --------------------------------------------------------------------------------------------------------------
H = 60
TCPA_HOURS = (8 * H, 21 * H)  # 47 CFR 64.1200(c)(1); 16 CFR 310.4(c)
CST_FIXED = dt_timezone(timedelta(hours=-6), "CST")


@dataclass(frozen=True)
class StateRule:
    hours: tuple[int, int]
    cite: str
    days: dict[int, tuple[int, int]] = field(default_factory=dict)
    closed: tuple[int, ...] = ()
    holidays: bool = False
    clock: dt_timezone | None = None


STATE_RULES: dict[str, StateRule] = {
    "AL": StateRule((8 * H, 20 * H), "Ala. Code 8-19A / Ala. Admin. Code 770-X-6", closed=(6,), holidays=True),
    "CT": StateRule((9 * H, 20 * H), "Conn. Gen. Stat. 42-288a (2023)"),
    "FL": StateRule((8 * H, 20 * H), "Fla. Stat. 501.616(6)(a)"),
    "KY": StateRule((10 * H, 21 * H), "KRS 367.46955(15)"),
    "LA": StateRule((8 * H, 20 * H), "La. R.S. 45:844.17; LPSC Gen. Order R-29617", closed=(6,), holidays=True),
    "MA": StateRule((8 * H, 20 * H), "M.G.L. c. 159C, 201 CMR 12.00"),
    "MD": StateRule((8 * H, 20 * H), "Md. Com. Law 14-4503 (Stop the Spam Calls Act, 2023)"),
    # MI: no hour limit in MCL 445.111-445.111e (Home Solicitation Sales Act); SB 351 (2025) pending.
    "MN": StateRule((9 * H, 21 * H), "Minn. Stat. 325E.27"),
    "MS": StateRule((8 * H, 20 * H), "Miss. Code 77-3-725 (Central Standard Time)", closed=(6,), clock=CST_FIXED),
    "NV": StateRule((9 * H, 21 * H), "NRS 597.814(2)(a): no automatic dialing-announcing call 21:00-09:00"),
    "NM": StateRule((9 * H, 21 * H), "NMSA 57-12-22"),
    "OK": StateRule((8 * H, 20 * H), "Okla. Stat. tit. 15, 775C.4"),
    "RI": StateRule((9 * H, 18 * H), "R.I. Gen. Laws 5-61-3.4", days={5: (10 * H, 17 * H)}, closed=(6,), holidays=True),
    "SC": StateRule((8 * H, 21 * H), "S.C. Code 37-21-70", days={6: (13 * H, 21 * H)}),
    "TX": StateRule((9 * H, 21 * H), "Tex. Bus. & Com. Code 301.051", days={6: (12 * H, 21 * H)}),
    "UT": StateRule((8 * H, 21 * H), "Utah Code 13-25a-103", closed=(6,), holidays=True),
    "WA": StateRule((8 * H, 20 * H), "RCW 80.36.390"),
}
# Unsolicited Telecommunications Rules, Part III (CRTC): weekdays 09:00-21:30, weekends 10:00-18:00, local.
CRTC_WEEKDAY = (9 * H, 21 * H + 30)
CRTC_WEEKEND = (10 * H, 18 * H)
CA_PROVINCES = set(CA_PROVINCE_NAMES.values())

# Clock-class labels for the usual zones (other classes are named by their first zone name).
CLASS_LABELS = {
    "America/New_York": "Eastern",
    "America/Chicago": "Central",
    "America/Denver": "Mountain",
    "America/Phoenix": "MST (no DST)",
    "America/Los_Angeles": "Pacific",
    "America/Anchorage": "Alaska",
    "Pacific/Honolulu": "Hawaii",
    "America/Adak": "Hawaii-Aleutian",
    "America/Puerto_Rico": "AST (no DST)",
    "America/Halifax": "Atlantic",
    "America/St_Johns": "Newfoundland",
    "America/Regina": "CST (no DST)",
    "America/Panama": "EST (no DST)",
    "Pacific/Guam": "ChST",
}


# --------------------------------------------------------------------------------------------------------------
# Clock classes
# --------------------------------------------------------------------------------------------------------------
class Clocks:
    """Zone name -> clock class label (offsets compared hourly over [start - 2 d, end + 2 d))."""

    def __init__(self, start: date, days: int) -> None:
        t0 = datetime(start.year, start.month, start.day, tzinfo=UTC) - timedelta(days=2)
        self.instants = [t0 + timedelta(hours=h) for h in range(0, (days + 4) * 24)]
        self._by_signature: dict[tuple, str] = {}
        for name in CLASS_LABELS:
            self.label(name)

    @cache  # noqa: B019 - one instance per run
    def label(self, name: str | None) -> str | None:
        if not name:
            return None
        try:
            zone = ZoneInfo(name)
        except Exception:
            return f"invalid:{name}"
        signature = tuple(int(t.astimezone(zone).utcoffset().total_seconds()) for t in self.instants[::1])
        if signature not in self._by_signature:
            self._by_signature[signature] = CLASS_LABELS.get(name, name)
        return self._by_signature[signature]


# --------------------------------------------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------------------------------------------
@dataclass
class Place:
    city: str
    state: str  # state or province code
    zip: str  # US ZIP5 or Canadian FSA
    lat: float
    lon: float
    zone: str  # IANA, timezonefinder at the point
    split: bool
    country: str  # US | CA
    prefixes: list[str] = field(default_factory=list)  # NPA-NXX (6 digits) geocoded to this city


@dataclass
class Truth:
    kind: str
    zones: frozenset[str]  # IANA names (address zone + phone home zone)
    states: frozenset[str]
    canada: bool
    address_zone: str
    phone_zone: str | None


class Generator:
    """Seeded contacts with their truth. Needs zip2info + timezonefinder (the reference group)."""

    KINDS: list[tuple[str, int]] = [
        ("local", 16),
        ("split_zone", 14),
        ("zone_line", 7),
        ("moved", 12),
        ("overlay", 5),
        ("typed_correct", 5),
        ("typed_wrong", 6),
        ("typed_abbrev", 6),
        ("typed_offset", 5),
        ("typed_windows", 5),
        ("canada", 8),
        ("toll_free", 4),
        ("no_zip_state", 4),
        ("zip_no_state", 3),
        ("odd_state", 5),
        ("no_evidence", 1),
    ]

    def __init__(self) -> None:
        import zip2info
        from timezonefinder import TimezoneFinder

        self.zip_info = zip2info.ZIP_INFO
        self.tzf = TimezoneFinder()
        by_city = self._geocoded_prefixes()
        self.places: list[Place] = []
        self.missing: list[str] = []
        self.overlay_only: list[str] = []  # no exchange geocoded to the city: reached by OVERLAYS numbers only
        for city, st, zip5, split in US_ANCHORS:
            record = self.zip_info.get(int(zip5))
            prefixes = by_city.get(f"{city}, {st}", [])
            if record is None:
                self.missing.append(f"{city}, {st} {zip5} (no ZIP)")
                continue
            if not prefixes:
                self.overlay_only.append(f"{city}, {st}")
            lat, lon = record[1], record[2]
            self.places.append(Place(city, st, zip5, lat, lon, self._zone(lat, lon), split, "US", prefixes))
        for city, prov, fsa, lat, lon in CA_ANCHORS:
            prefixes = by_city.get(f"{city}, {prov}", [])
            if not prefixes:
                self.overlay_only.append(f"{city}, {prov}")
            self.places.append(Place(city, prov, fsa, lat, lon, self._zone(lat, lon), True, "CA", prefixes))
        self.by_key = {(p.city, p.state): p for p in self.places}
        self.places = [p for p in self.places if p.prefixes]
        self.us_places = [p for p in self.places if p.country == "US"]
        self.ca_places = [p for p in self.places if p.country == "CA"]
        self.split_places = [p for p in self.us_places if p.split]
        # ZIP3 -> ZIPs (for neighbours of an anchor)
        self.zip3: dict[str, list[int]] = defaultdict(list)
        wanted = {p.zip[:3] for p in self.by_key.values() if p.country == "US"}
        for z in self.zip_info:
            key = f"{z:05d}"[:3]
            if key in wanted:
                self.zip3[key].append(z)

    def _zone(self, lat: float, lon: float) -> str:
        zone = self.tzf.timezone_at(lat=lat, lng=lon)
        if zone is None:
            raise RuntimeError(f"timezonefinder has no zone at {lat},{lon}")
        return zone

    @staticmethod
    def _geocoded_prefixes() -> dict[str, list[str]]:
        """City description ("Paducah, KY") -> the NANP prefixes (3 to 6 digits after the 1) phonenumbers'
        geocoder gives it; a number drawn on a prefix is kept only if the geocoder names that city for it."""
        from phonenumbers.geodata import GEOCODE_DATA

        out: dict[str, list[str]] = defaultdict(list)
        for prefix, names in GEOCODE_DATA.items():
            if 4 <= len(prefix) <= 7 and prefix.startswith("1") and ", " in names.get("en", ""):
                out[names["en"]].append(prefix[1:])
        for values in out.values():
            values.sort()
        return out

    # -- phones -------------------------------------------------------------------------------------------------
    def _number(self, rng: random.Random, prefix: str, used: set[str], city: str | None = None) -> str | None:
        for _ in range(30):
            digits = prefix + "".join(str(rng.randrange(10)) for _ in range(10 - len(prefix)))
            if len(prefix) < 6 and digits[3] in "01":  # NXX starts 2-9
                continue
            e164 = f"+1{digits}"
            if e164 in used:
                continue
            num = phonenumbers.parse(e164)
            if not phonenumbers.is_valid_number(num):
                continue
            if city is not None and geocoder.description_for_number(num, "en") != city:
                continue
            used.add(e164)
            return e164
        return None

    def phone_at(self, rng: random.Random, place: Place, used: set[str]) -> str:
        for _ in range(50):
            number = self._number(rng, rng.choice(place.prefixes), used, f"{place.city}, {place.state}")
            if number:
                return number
        raise RuntimeError(f"no valid number for {place.city}")

    def overlay_phone(self, rng: random.Random, overlay: str, used: set[str]) -> str:
        """A number on the area code that phonenumbers geocodes only to its state/region (no city)."""
        for _ in range(400):
            number = self._number(rng, f"{overlay}{rng.randrange(200, 1000):03d}", used)
            if number and ", " not in geocoder.description_for_number(phonenumbers.parse(number), "en"):
                return number
            if number:
                used.discard(number)
        raise RuntimeError(f"no valid number on {overlay}")

    def toll_free_phone(self, rng: random.Random, used: set[str]) -> str:
        for _ in range(200):
            number = self._number(rng, f"{rng.choice(TOLL_FREE)}{rng.randrange(200, 1000):03d}", used)
            if number:
                return number
        raise RuntimeError("no valid toll-free number")

    # -- addresses ----------------------------------------------------------------------------------------------
    def neighbour(self, rng: random.Random, place: Place, *, same_zone: bool) -> tuple[str, float, float, str]:
        """A ZIP of the anchor's ZIP3 (same zone as the anchor's when asked), with its point and zone."""
        if place.country == "CA":
            return (
                f"{place.zip} {rng.randrange(10)}{rng.choice('ABCEGHJKLMNPRSTVWXYZ')}{rng.randrange(10)}",
                place.lat,
                place.lon,
                place.zone,
            )
        for _ in range(20):
            z = rng.choice(self.zip3[place.zip[:3]])
            _, lat, lon = self.zip_info[z]
            zone = self.tzf.timezone_at(lat=lat, lng=lon)
            if zone and (not same_zone or zone == place.zone):
                return f"{z:05d}", lat, lon, zone
        return place.zip, place.lat, place.lon, place.zone

    # -- contacts -----------------------------------------------------------------------------------------------
    def generate(self, n: int, seed: int, clocks: Clocks) -> tuple[list[dict[str, str]], list[Truth]]:
        rng = random.Random(seed)
        used: set[str] = set()
        kinds = [k for k, _ in self.KINDS]
        weights = [w for _, w in self.KINDS]
        rows: list[dict[str, str]] = []
        truths: list[Truth] = []
        # every kind and every anchor at least once, then weighted draws
        plan = kinds + [rng.choices(kinds, weights)[0] for _ in range(max(0, n - len(kinds)))]
        plan = plan[:n]
        anchor_cycle = list(self.us_places)
        rng.shuffle(anchor_cycle)
        for i, kind in enumerate(plan):
            row, truth = self._contact(rng, kind, used, clocks, anchor_cycle[i % len(anchor_cycle)])
            row.update(self._person(rng, i))
            rows.append(row)
            truths.append(truth)
        return rows, truths

    def _contact(self, rng: random.Random, kind: str, used: set[str], clocks: Clocks, cycle_place: Place):
        phone_place: Place | None = None
        phone: str
        tz_text = ""
        state_text: str | None = None  # None: the address state code
        zip_text: str | None = None  # None: the address ZIP
        if kind == "canada":
            place = rng.choice(self.ca_places)
        elif kind in ("split_zone", "zone_line"):
            place = rng.choice(self.split_places)
        elif kind == "overlay":
            overlay, city, st = rng.choice(OVERLAYS)
            place = self.by_key.get((city, st)) or cycle_place
        elif kind == "local":
            place = cycle_place
        else:
            place = rng.choice(self.us_places)
        zip_value, lat, lon, address_zone = self.neighbour(rng, place, same_zone=kind != "zone_line")

        if kind == "overlay" and (place.city, place.state) == (city, st):
            phone = self.overlay_phone(rng, overlay, used)
        elif kind in ("toll_free", "no_evidence"):
            phone = self.toll_free_phone(rng, used)
        elif kind == "moved" or (kind in ("odd_state", "zip_no_state", "typed_wrong") and rng.random() < 0.5):
            phone_place = rng.choice([p for p in self.us_places if p.state != place.state])
            if rng.random() < 0.1:
                phone_place = rng.choice(self.ca_places)
            phone = self.phone_at(rng, phone_place, used)
        else:
            phone_place = place
            phone = self.phone_at(rng, place, used)

        address_class = clocks.label(address_zone)
        if kind == "typed_correct":
            tz_text = rng.choice([address_zone, *TYPED_WORDS.get(address_class, [address_zone])])
        elif kind == "typed_wrong":
            other = rng.choice([c for c in TYPED_WORDS if c != address_class])
            tz_text = rng.choice(TYPED_WORDS[other])
        elif kind == "typed_abbrev":
            tz_text = rng.choice(TYPED_ABBREV.get(address_class, [address_zone]))
        elif kind == "typed_offset":
            tz_text = rng.choice(TYPED_OFFSET.get(address_class, [address_zone]))
        elif kind == "typed_windows":
            tz_text = rng.choice(TYPED_WINDOWS.get(address_class, [address_zone]))
        elif kind in ("no_zip_state", "no_evidence"):
            state_text, zip_text = "", ""
        elif kind == "zip_no_state":
            state_text = ""
        elif kind == "odd_state":
            state_text = rng.choice(ODD_SPELLINGS.get(place.state, [CODE_TO_NAME.get(place.state, place.state)]))
            if rng.random() < 0.5:
                zip_text = ""
        if kind.startswith("typed_") and rng.random() < 0.3:
            zip_text = ""  # the typed zone and the phone are then the main evidence
        if state_text is None:
            state_text = place.state if rng.random() < 0.8 else CODE_TO_NAME.get(place.state, place.state)

        phone_zone = phone_place.zone if phone_place is not None else None
        zones = {address_zone} | ({phone_zone} if phone_zone else set())
        states = {place.state} | phone_states(phone)
        canada = place.country == "CA" or phone_country(phone) == "CA"
        truth = Truth(kind, frozenset(zones), frozenset(s for s in states if s), canada, address_zone, phone_zone)
        row = {
            "phone": format_phone(rng, phone),
            "state": state_text,
            "zip": zip_value if zip_text is None else zip_text,
            "timezone": tz_text,
            "_phone_e164": phone,
        }
        return row, truth

    @staticmethod
    def _person(rng: random.Random, i: int) -> dict[str, str]:
        first = rng.choice(["Ana", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jamal", "Kira"])
        last = rng.choice(["Nguyen", "Smith", "Okafor", "Garcia", "Kowalski", "Haddad", "Lee", "Martin", "Singh"])
        consent_day = date(2024, 1, 1) + timedelta(days=rng.randrange(700))
        return {
            "first_name": first,
            "last_name": last,
            "email": f"{first.lower()}.{last.lower()}.{i}@example.com",
            "consent": "yes",
            "consent_date": consent_day.isoformat(),
            "consent_source": rng.choice(["web_form", "checkout", "paper_form"]),
        }


def format_phone(rng: random.Random, e164: str) -> str:
    d = e164[2:]
    return rng.choice(
        [
            f"({d[:3]}) {d[3:6]}-{d[6:]}",
            f"{d[:3]}-{d[3:6]}-{d[6:]}",
            f"+1 {d[:3]} {d[3:6]} {d[6:]}",
            d,
            f"1{d}",
            f"{d[:3]}.{d[3:6]}.{d[6:]}",
        ]
    )


def phone_country(e164: str) -> str | None:
    return phonenumbers.region_code_for_number(phonenumbers.parse(e164))


def phone_states(e164: str) -> set[str]:
    """State(s)/province(s) of the number from phonenumbers' geocoder text ("Paducah, KY", "Kentucky",
    "Northwest Territories/Nunavut/Yukon"); empty for toll-free numbers."""
    text = geocoder.description_for_number(phonenumbers.parse(e164), "en")
    if not text:
        return set()
    if ", " in text:
        code = text.rsplit(", ", 1)[1].strip()
        return {code} if code in CODE_TO_NAME else set()
    names = {**US_STATE_NAMES, **CA_PROVINCE_NAMES}
    return {names[part.strip()] for part in text.split("/") if part.strip() in names}


CSV_HEADER = [
    "first_name",
    "last_name",
    "phone",
    "email",
    "state",
    "zip",
    "timezone",
    "consent",
    "consent_date",
    "consent_source",
]


def write_csv(path: Path, rows: Sequence[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_HEADER)
        for row in rows:
            writer.writerow([row[c] for c in CSV_HEADER])


def truth_frame(rows: Sequence[dict[str, str]], truths: Sequence[Truth]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "phone_e164": [r["_phone_e164"] for r in rows],
            "kind": [t.kind for t in truths],
            "zones": [sorted(t.zones) for t in truths],
            "states": [sorted(t.states) for t in truths],
            "canada": [t.canada for t in truths],
        },
        schema={
            "phone_e164": pl.Utf8,
            "kind": pl.Utf8,
            "zones": pl.List(pl.Utf8),
            "states": pl.List(pl.Utf8),
            "canada": pl.Boolean,
        },
    )


# --------------------------------------------------------------------------------------------------------------
# Reference checker
# --------------------------------------------------------------------------------------------------------------
Intervals = tuple[np.ndarray, np.ndarray]  # sorted, disjoint [starts, ends) in epoch seconds


@cache
def state_holidays(state: str, years: tuple[int, ...]) -> frozenset[date]:
    import holidays

    return frozenset(holidays.country_holidays("US", subdiv=state, years=years, observed=True).keys())


def _daily(tz, hours_on, first: date, last: date) -> Intervals:
    starts, ends = [], []
    day = first
    while day <= last:
        hours = hours_on(day)
        if hours is not None and hours[0] < hours[1]:
            base = datetime(day.year, day.month, day.day)
            s = (base + timedelta(minutes=hours[0])).replace(tzinfo=tz).timestamp()
            e = (base + timedelta(minutes=hours[1])).replace(tzinfo=tz).timestamp()
            starts.append(s)
            ends.append(e)
        day += timedelta(days=1)
    return np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64)


def intersect(a: Intervals, b: Intervals) -> Intervals:
    i = j = 0
    starts, ends = [], []
    (sa, ea), (sb, eb) = a, b
    while i < len(sa) and j < len(sb):
        lo, hi = max(sa[i], sb[j]), min(ea[i], eb[j])
        if lo < hi:
            starts.append(lo)
            ends.append(hi)
        if ea[i] < eb[j]:
            i += 1
        else:
            j += 1
    return np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64)


def legal_intervals(
    zones: Iterable[str], states: Iterable[str], canada: bool, start: date, days: int, *, tcpa_only: bool = False
) -> Intervals:
    """UTC intervals (epoch seconds) legal in every zone under every state's rule (and CRTC), over
    [start - 2 d, start + days + 2 d)."""
    first, last = start - timedelta(days=2), start + timedelta(days=days + 2)
    years = tuple(range(first.year - 1, last.year + 2))
    result: Intervals | None = None

    def add(piece: Intervals) -> None:
        nonlocal result
        result = piece if result is None else intersect(result, piece)

    states = sorted(set(states))
    for name in sorted(set(zones)):
        tz = ZoneInfo(name)
        add(_daily(tz, lambda d: TCPA_HOURS, first, last))
        if tcpa_only:
            continue
        if canada:
            add(_daily(tz, lambda d: CRTC_WEEKEND if d.weekday() >= 5 else CRTC_WEEKDAY, first, last))
        for st in states:
            rule = STATE_RULES.get(st)
            if rule is None or rule.clock is not None:
                continue
            add(_daily(tz, _hours_fn(st, rule, years), first, last))
    if not tcpa_only:
        for st in states:
            rule = STATE_RULES.get(st)
            if rule is not None and rule.clock is not None:
                add(_daily(rule.clock, _hours_fn(st, rule, years), first, last))
    if result is None:
        return np.array([], dtype=np.int64), np.array([], dtype=np.int64)
    return result


def _hours_fn(state: str, rule: StateRule, years: tuple[int, ...]):
    closed_dates = state_holidays(state, years) if rule.holidays else frozenset()

    def hours_on(day: date) -> tuple[int, int] | None:
        if day.weekday() in rule.closed or day in closed_dates:
            return None
        return rule.days.get(day.weekday(), rule.hours)

    return hours_on


def legal_overlap(legal: Intervals, opens: np.ndarray, closes: np.ndarray) -> np.ndarray:
    """Seconds of each [opens, closes) that lie in the legal set: L(closes) - L(opens)."""
    starts, ends = legal
    if len(starts) == 0:
        return np.zeros(len(opens), dtype=np.int64)
    cumulative = np.concatenate([[0], np.cumsum(ends - starts)])

    def measure(t: np.ndarray) -> np.ndarray:
        i = np.searchsorted(starts, t, side="right") - 1
        inside = np.where(i >= 0, np.minimum(t, ends[np.maximum(i, 0)]) - starts[np.maximum(i, 0)], 0)
        return np.where(i >= 0, cumulative[np.maximum(i, 0)] + inside, 0)

    return measure(closes) - measure(opens)


def count_illegal(windows: pl.DataFrame, truth: pl.DataFrame, start: date, days: int) -> pl.DataFrame:
    """Per contact in `truth`: open seconds, illegal seconds (any rule) and illegal seconds under 08:00-21:00
    alone. `windows` has phone_e164, opens (epoch s), closes (epoch s)."""
    profile_key = truth.select(
        "phone_e164",
        pl.concat_str(
            [pl.col("zones").list.join(","), pl.col("states").list.join(","), pl.col("canada").cast(pl.Utf8)],
            separator="|",
        ).alias("profile"),
    )
    joined = windows.join(profile_key, on="phone_e164", how="inner")
    parts = []
    profiles = truth.select("zones", "states", "canada").with_columns(profile_key["profile"]).unique("profile")
    for row in profiles.iter_rows(named=True):
        group = joined.filter(pl.col("profile") == row["profile"])
        if group.height == 0:
            continue
        opens = group["opens"].to_numpy().astype(np.int64)
        closes = group["closes"].to_numpy().astype(np.int64)
        full = legal_intervals(row["zones"], row["states"], row["canada"], start, days)
        base = legal_intervals(row["zones"], row["states"], row["canada"], start, days, tcpa_only=True)
        length = closes - opens
        parts.append(
            group.select("phone_e164").with_columns(
                open_s=pl.Series(length),
                illegal_s=pl.Series(length - legal_overlap(full, opens, closes)),
                illegal_tcpa_s=pl.Series(length - legal_overlap(base, opens, closes)),
            )
        )
    per = (
        pl.concat(parts).group_by("phone_e164").agg(pl.col("open_s", "illegal_s", "illegal_tcpa_s").sum())
        if parts
        else pl.DataFrame(
            schema={"phone_e164": pl.Utf8, "open_s": pl.Int64, "illegal_s": pl.Int64, "illegal_tcpa_s": pl.Int64}
        )
    )
    return truth.select("phone_e164", "kind").join(per, on="phone_e164", how="left").fill_null(0)


def illegal_by_rule(
    windows: pl.DataFrame, truth: pl.DataFrame, leaking: Sequence[str], start: date, days: int, label=lambda zone: zone
) -> Counter:
    """Illegal minutes of the leaking contacts under each rule taken alone ("08:00-21:00 Eastern", "MI",
    "CRTC Mountain", ...); a minute illegal under two rules counts under both."""
    totals: Counter = Counter()
    subset = truth.filter(pl.col("phone_e164").is_in(pl.Series(list(leaking), dtype=pl.Utf8).implode()))
    win = windows.join(subset.select("phone_e164"), on="phone_e164", how="semi")
    for row in subset.iter_rows(named=True):
        group = win.filter(pl.col("phone_e164") == row["phone_e164"])
        opens = group["opens"].to_numpy().astype(np.int64)
        closes = group["closes"].to_numpy().astype(np.int64)
        length = closes - opens
        rules: list[tuple[str, Intervals]] = []
        for zone in row["zones"]:
            name = label(zone)
            rules.append((f"08:00-21:00 {name}", legal_intervals([zone], [], False, start, days)))
            if row["canada"]:
                rules.append((f"CRTC {name}", _crtc_only(zone, start, days)))
        for st in row["states"]:
            if st in STATE_RULES:
                rules.append((f"state {st}", legal_intervals(row["zones"], [st], False, start, days)))
        for rule, legal in rules:
            totals[rule] += int((length - legal_overlap(legal, opens, closes)).sum()) // 60
    return totals


def _crtc_only(zone: str, start: date, days: int) -> Intervals:
    first, last = start - timedelta(days=2), start + timedelta(days=days + 2)
    return _daily(ZoneInfo(zone), lambda d: CRTC_WEEKEND if d.weekday() >= 5 else CRTC_WEEKDAY, first, last)


# --------------------------------------------------------------------------------------------------------------
# Zone confusion
# --------------------------------------------------------------------------------------------------------------
VERDICTS = ("exact", "superset", "wrong", "unknown", "rejected")


def confusion(
    truth_zones: Sequence[Sequence[str]], candidates: Sequence[Sequence[str] | None], clocks: Clocks
) -> list[str]:
    """exact / superset / wrong / unknown per contact, comparing by clock class."""
    out = []
    for tz, cand in zip(truth_zones, candidates, strict=True):
        t = {clocks.label(z) for z in tz}
        c = {clocks.label(z) for z in (cand or []) if z}
        if not c:
            out.append("unknown")
        elif not t <= c:
            out.append("wrong")
        elif c == t:
            out.append("exact")
        else:
            out.append("superset")
    return out


# --------------------------------------------------------------------------------------------------------------
# Pipeline (the real CLI)
# --------------------------------------------------------------------------------------------------------------
def callaro_command() -> list[str]:
    script = Path(sys.executable).parent / "callaro"
    return [str(script)] if script.exists() else ["uv", "run", "callaro"]


def campaign_yaml(name: str, *, all_hours: bool) -> str:
    window = (
        '{start: "00:00", end: "24:00", days: [mon, tue, wed, thu, fri, sat, sun]}'
        if all_hours
        else '{start: "09:00", end: "20:00", days: [mon, tue, wed, thu, fri]}'
    )
    return (
        f"name: {name}\ndefault_region: US\nduplicates: suppress\nrequire_consent: false\n"
        f"require_national_dnc: false\nai_voice: false\nmax_rejected_share: 1.0\naudience:\n  uploads: all\n"
        f"window: {window}\n"
    )


class Installation:
    """A throw-away CALLARO_HOME + CALLARO_CONFIG."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.home = base / "home"
        self.config = base / "config"
        (self.home / "dagster").mkdir(parents=True, exist_ok=True)
        if not self.config.exists():
            shutil.copytree(PROJECT_ROOT / "config", self.config)
        self.env = {
            **os.environ,
            "CALLARO_HOME": str(self.home),
            "CALLARO_CONFIG": str(self.config),
            "DAGSTER_HOME": str(self.home / "dagster"),
        }

    def set_campaign(self, name: str, *, all_hours: bool) -> None:
        path = self.config / "campaigns" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(campaign_yaml(name, all_hours=all_hours), encoding="utf-8")

    def run(self, *args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*callaro_command(), *args], env=self.env, capture_output=True, text=True, timeout=timeout, cwd=self.base
        )


def windows_supported(inst: Installation) -> bool:
    return "--windows" in inst.run("audience", "--help").stdout


def read_windows(path: Path) -> pl.DataFrame:
    frame = pl.read_parquet(path)

    def epoch(col: str) -> pl.Expr:
        dtype = frame.schema[col]
        expr = pl.col(col)
        if dtype == pl.Utf8:
            expr = expr.str.to_datetime(time_zone="UTC")
        return expr.dt.epoch("s")

    return frame.select("phone_e164", epoch("opens_utc").alias("opens"), epoch("closes_utc").alias("closes"))


@dataclass
class PassResult:
    label: str
    per_contact: pl.DataFrame
    audience: int
    windows_rows: int
    windows: pl.DataFrame | None = None


def export_pass(
    inst: Installation, truth: pl.DataFrame, campaign: str, start: date, days: int, label: str, out: Path
) -> PassResult:
    proc = inst.run(
        "audience", campaign, "--windows", "--from", start.isoformat(), "--days", str(days), "--out", str(out)
    )
    if proc.returncode != 0:
        raise SystemExit(f"audience --windows failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    windows = read_windows(out)
    per = count_illegal(windows, truth, start, days)
    members = windows["phone_e164"].n_unique()
    return PassResult(label, per, members, windows.height, windows)


# --------------------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------------------
def minutes(seconds: int) -> str:
    return f"{seconds / 60:,.0f}"


def print_pass(result: PassResult, total: int) -> None:
    per = result.per_contact
    leaking = per.filter(pl.col("illegal_s") > 0)
    print(f"\n== {result.label} ==")
    print(
        f"contacts in audience (any open interval): {result.audience} of {total}; never callable: "
        f"{total - result.audience}; intervals exported: {result.windows_rows:,}"
    )
    print(
        f"open minutes: {minutes(per['open_s'].sum())}; ILLEGAL minutes: {minutes(per['illegal_s'].sum())} "
        f"(outside 08:00-21:00 in a truth zone: {minutes(per['illegal_tcpa_s'].sum())}; only under state/CRTC "
        f"rules: {minutes(per['illegal_s'].sum() - per['illegal_tcpa_s'].sum())})"
    )
    print(f"contacts with any illegal minute: {leaking.height} ({100 * leaking.height / max(total, 1):.1f}%)")
    table = (
        per.group_by("kind")
        .agg(
            pl.len().alias("contacts"),
            (pl.col("open_s") > 0).sum().alias("callable"),
            (pl.col("illegal_s") > 0).sum().alias("leaking"),
            (pl.col("illegal_s").sum() / 60).round(0).cast(pl.Int64).alias("illegal_min"),
            (pl.col("illegal_tcpa_s").sum() / 60).round(0).cast(pl.Int64).alias("of_which_tcpa_min"),
        )
        .with_columns((100 * pl.col("leaking") / pl.col("contacts")).round(1).alias("leaking_%"))
        .sort("kind")
    )
    print_table(table)


def print_table(frame: pl.DataFrame) -> None:
    cols = frame.columns
    cells = [[str(v) for v in row] for row in frame.iter_rows()]
    widths = [max(len(c), *(len(r[i]) for r in cells)) if cells else len(c) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))


def leak_examples(
    per: pl.DataFrame, truth: pl.DataFrame, decided: pl.DataFrame, rows_by_phone: dict, per_kind: int = 6
) -> None:
    """The largest leaks of each contact kind, with what the file said, the truth and what was decided."""
    leaks = (
        per.filter(pl.col("illegal_s") > 0)
        .sort("illegal_s", descending=True)
        .group_by("kind", maintain_order=True)
        .head(per_kind)
        .sort("kind")
    )
    for r in (
        leaks.join(truth.drop("kind"), on="phone_e164").join(decided, on="phone_e164", how="left").iter_rows(named=True)
    ):
        src = rows_by_phone[r["phone_e164"]]
        print(
            f"  {r['kind']:<13} phone={src['phone']!r} state={src['state']!r} zip={src['zip']!r} "
            f"tz={src['timezone']!r} | truth {','.join(r['zones'])} + {','.join(r['states'])} | decided "
            f"{r.get('timezone_candidates')} ({r.get('timezone_source')}) | {r['illegal_s'] // 60} illegal min"
        )


def run_audit(n: int, seed: int, start: date, days: int, *, keep: Path | None = None, verbose: bool = True) -> dict:
    t0 = time.monotonic()
    clocks = Clocks(start, days)
    gen = Generator()
    rows, truths = gen.generate(n, seed, clocks)
    truth = truth_frame(rows, truths)
    rows_by_phone = {r["_phone_e164"]: r for r in rows}
    base = keep or Path(tempfile.mkdtemp(prefix="callaro-audit-"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        inst = Installation(base)
        inst.set_campaign("audit", all_hours=True)
        upload = base / "audit_contacts.csv"
        write_csv(upload, rows)
        if verbose:
            print(
                f"generated {len(rows)} contacts (seed {seed}) from {len(gen.places)} anchor places "
                f"({len(gen.missing)} anchors skipped: {', '.join(gen.missing) or 'none'}); kinds: "
                + ", ".join(f"{k} {c}" for k, c in sorted(Counter(t.kind for t in truths).items()))
            )
        if not windows_supported(inst):
            raise SystemExit("`callaro audience --windows` is not available yet: nothing to audit")
        proc = inst.run("import", str(upload), "--campaign", "audit", "--json")
        summary: dict = {}
        try:
            summary = json.loads(proc.stdout[proc.stdout.find("{") :]) if "{" in proc.stdout else {}
        except json.JSONDecodeError:
            pass
        if verbose:
            keys = ("rows_read", "imported", "rejected", "duplicates", "suppressed", "status")
            print(
                f"import exit {proc.returncode}: "
                + ", ".join(f"{k}={summary[k]}" for k in keys if k in summary)
                + (f"; stderr: {proc.stderr.strip()[-300:]}" if proc.returncode else "")
            )
        if proc.returncode != 0:
            raise SystemExit(f"import failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")

        contacts_out = base / "contacts.parquet"
        proc = inst.run("contacts", "export", "--out", str(contacts_out))
        decided = (
            pl.read_parquet(contacts_out).select("phone_e164", "timezone_candidates", "timezone_source")
            if proc.returncode == 0
            else pl.DataFrame(
                schema={"phone_e164": pl.Utf8, "timezone_candidates": pl.List(pl.Utf8), "timezone_source": pl.Utf8}
            )
        )
        all_hours = export_pass(
            inst, truth, "audit", start, days, "pass 1: campaign window 00:00-24:00 every day", base / "w.parquet"
        )
        inst.set_campaign("audit", all_hours=False)
        default = export_pass(
            inst, truth, "audit", start, days, "pass 2: campaign window 09:00-20:00 Mon-Fri", base / "w_default.parquet"
        )

        joined = truth.join(decided.with_columns(in_book=pl.lit(True)), on="phone_e164", how="left")
        verdicts = confusion(joined["zones"].to_list(), joined["timezone_candidates"].to_list(), clocks)
        joined = joined.with_columns(
            verdict=pl.Series(
                [v if in_book else "rejected" for v, in_book in zip(verdicts, joined["in_book"], strict=True)]
            ),
            truth_class=pl.Series(["+".join(sorted({clocks.label(z) for z in zs})) for zs in joined["zones"]]),
        )
        if verbose:
            missing = truth.join(decided, on="phone_e164", how="anti")
            print(
                f"audit window: {start} + {days} days; {len(rows)} contacts; in contact book: "
                f"{len(rows) - missing.height}; not in the book (rejected): "
                + (", ".join(f"{k} {c}" for k, c in sorted(Counter(missing["kind"].to_list()).items())) or "none")
            )
            verdict_of = joined.select("phone_e164", "verdict")
            for result in (all_hours, default):
                print_pass(result, len(rows))
                leaking = result.per_contact.filter(pl.col("illegal_s") > 0)
                if leaking.height:
                    by_verdict = Counter(leaking.join(verdict_of, on="phone_e164")["verdict"].to_list())
                    print(
                        "leaking contacts by zone verdict (exact = right zones, so a rule is missing or wrong): "
                        + ", ".join(f"{k} {by_verdict[k]}" for k in VERDICTS if by_verdict[k])
                    )
                    rules = illegal_by_rule(
                        result.windows, truth, leaking["phone_e164"].to_list(), start, days, label=clocks.label
                    )
                    print(
                        "illegal minutes by rule taken alone (a minute can break several): "
                        + ", ".join(f"{k} {v:,}" for k, v in rules.most_common() if v)
                    )
                    right = leaking.join(verdict_of, on="phone_e164").filter(
                        pl.col("verdict").is_in(["exact", "superset"])
                    )
                    if right.height:
                        rules = illegal_by_rule(
                            result.windows, truth, right["phone_e164"].to_list(), start, days, label=clocks.label
                        )
                        print(
                            f"  of which {right.height} contacts whose candidates hold every truth zone (a rule "
                            "is missing or wrong): " + ", ".join(f"{k} {v:,}" for k, v in rules.most_common() if v)
                        )
                    print("largest leaks:")
                    leak_examples(result.per_contact, truth, decided, rows_by_phone)
            print("\n== zone confusion (truth zones by clock class vs decided candidates) ==")
            counts = Counter(joined["verdict"].to_list())
            print("  ".join(f"{k} {counts.get(k, 0)} ({100 * counts.get(k, 0) / len(rows):.1f}%)" for k in VERDICTS))
            for by in ("truth_class", "kind"):
                table = (
                    joined.group_by(by)
                    .agg(pl.len().alias("contacts"), *[(pl.col("verdict") == v).sum().alias(v) for v in VERDICTS])
                    .sort("contacts", descending=True)
                )
                print()
                print_table(table)
            print(f"\nelapsed {time.monotonic() - t0:.0f} s")
        return {
            "pass_minutes": [int(r.per_contact["illegal_s"].sum()) / 60 for r in (all_hours, default)],
            "illegal_minutes": int(all_hours.per_contact["illegal_s"].sum() + default.per_contact["illegal_s"].sum())
            // 60,
            "illegal_seconds": int(all_hours.per_contact["illegal_s"].sum() + default.per_contact["illegal_s"].sum()),
            "passes": (all_hours, default),
            "confusion": Counter(joined["verdict"].to_list()),
            "truth": truth,
        }
    finally:
        if keep is None:
            shutil.rmtree(base, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--from", dest="start", default="2026-01-01")
    parser.add_argument("--keep", type=Path, default=None, help="keep the installation and files in this folder")
    args = parser.parse_args(argv)
    result = run_audit(args.contacts, args.seed, date.fromisoformat(args.start), args.days, keep=args.keep)
    one, two = result["pass_minutes"]
    print(
        f"\nRESULT: {one:,.0f} illegal minutes with the all-hours campaign window, {two:,.0f} with 09:00-20:00 Mon-Fri"
    )
    return 1 if result["illegal_seconds"] > 0 else 0


if __name__ == "__main__":
    sys.exit(main())
