"""Static reference tables the generator draws from: names, places, phones, products.

Kept as plain tuples so every draw is an index into a small table (vectorized `take`),
and so a reader sees at a glance what kind of values the landed files hold.
"""

from __future__ import annotations

# Countries of the population, their shares and how each source may spell them.
COUNTRIES = ("US", "CA", "GB", "DE", "FR", "AU")
COUNTRY_SHARES = (0.75, 0.07, 0.08, 0.05, 0.03, 0.02)
CURRENCIES = ("USD", "CAD", "GBP", "EUR", "EUR", "AUD")
# Rough price level against USD so that unit prices look local.
FX = (1.0, 1.35, 0.79, 0.92, 0.92, 1.52)
# Tax share of the net amount, by country (sales tax in US/CA, VAT elsewhere).
TAX_RATES = (0.07, 0.13, 0.20, 0.19, 0.20, 0.10)
# UTC offset in minutes (standard time) used when a source writes local time with an offset.
UTC_OFFSETS = (-300, -300, 0, 60, 60, 600)
COUNTRY_SPELLINGS = (
    ("US", "USA", "United States", "United States of America", "u.s."),
    ("CA", "Canada", "CAN"),
    ("GB", "UK", "United Kingdom", "Great Britain"),
    ("DE", "Germany", "Deutschland", "DEU"),
    ("FR", "France", "FRA"),
    ("AU", "Australia", "AUS"),
)
# Culture of each country: which name lists and street styles it uses.
CULTURE = (0, 0, 0, 1, 2, 0)  # 0 English, 1 German, 2 French

# First names: English names with a common nickname come first (see NICKNAMES).
NICKNAMES = (
    ("Robert", "Bob"), ("William", "Bill"), ("Elizabeth", "Liz"), ("Katherine", "Kate"),
    ("Richard", "Rick"), ("James", "Jim"), ("John", "Jack"), ("Michael", "Mike"),
    ("Thomas", "Tom"), ("Christopher", "Chris"), ("Daniel", "Dan"), ("Matthew", "Matt"),
    ("Anthony", "Tony"), ("Joseph", "Joe"), ("Edward", "Ed"), ("Andrew", "Andy"),
    ("Jonathan", "Jon"), ("Nicholas", "Nick"), ("Samuel", "Sam"), ("Benjamin", "Ben"),
    ("Alexander", "Alex"), ("Steven", "Steve"), ("Margaret", "Peggy"), ("Jennifer", "Jen"),
    ("Patricia", "Pat"), ("Susan", "Sue"), ("Rebecca", "Becky"), ("Victoria", "Vicky"),
    ("Deborah", "Debbie"), ("Jessica", "Jess"), ("Abigail", "Abby"), ("Samantha", "Sam"),
    ("Theodore", "Ted"), ("Charles", "Charlie"), ("Timothy", "Tim"),
)
FIRST_NAMES_EN = tuple(n for n, _ in NICKNAMES) + (
    "Mary", "Linda", "Sarah", "Karen", "Nancy", "Lisa", "Emily", "Emma", "Olivia", "Sophia",
    "Mia", "Laura", "Anna", "Julia", "Claire", "Chloe", "Lucy", "Hannah", "Grace", "Maria",
    "Amanda", "Megan", "Rachel", "Ashley", "Nicole", "Ava", "Isabella", "Zoe", "Ruby", "Ella",
    "David", "Mark", "Paul", "Kevin", "Brian", "George", "Ryan", "Eric", "Jacob", "Noah",
    "Liam", "Ethan", "Lucas", "Oliver", "Henry", "Jason", "Justin", "Aaron", "Adam", "Kyle",
    "Tyler", "Nathan", "Sean", "Patrick", "Gregory", "Scott", "Jeffrey", "Gary", "Dylan", "Logan",
)
FIRST_NAMES_DE = (
    "Andreas", "Stefan", "Katharina", "Lukas", "Felix", "Jürgen", "Sabine", "Ursula", "Klaus",
    "Wolfgang", "Petra", "Monika", "Jonas", "Leonie", "Maximilian", "Lena", "Tobias", "Anja",
    "Michael", "Thomas", "Anna", "Julia", "Laura",
)
FIRST_NAMES_FR = (
    "Jean", "Pierre", "Marie", "Sophie", "Camille", "Léa", "Chloé", "Hélène", "François",
    "Nicolas", "Julien", "Antoine", "Manon", "Céline", "Isabelle", "Mathieu", "Élodie",
    "Thomas", "Julia", "Laura", "Emma",
)
FIRST_NAMES = tuple(dict.fromkeys(FIRST_NAMES_EN + FIRST_NAMES_DE + FIRST_NAMES_FR))
LAST_NAMES_EN = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Evans", "Turner", "Phillips",
    "Parker", "Collins", "Edwards", "Stewart", "Morris", "Murphy", "Cook", "Rogers", "Morgan",
    "Cooper", "Peterson", "Reed", "Bailey", "Bell", "Kelly", "Howard", "Ward", "Cox",
    "Richardson", "Wood", "Watson", "Brooks", "Bennett", "Gray", "Hughes", "Price", "Sanders",
    "Patel", "Myers", "Long", "Ross", "Foster", "O'Brien", "McDonald", "Smith-Jones", "Chen",
    "Kim", "Singh", "Wong", "MacLeod", "Fraser", "Tremblay", "Gagnon", "Roy", "Davies", "Owen",
)
LAST_NAMES_DE = (
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz",
    "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder", "Neumann",
)
LAST_NAMES_FR = (
    "Dubois", "Durand", "Lefèvre", "Moreau", "Laurent", "Bernard", "Petit", "Roux", "Fournier",
    "Girard", "Bonnet", "Dupont", "Lambert", "Fontaine", "Rousseau", "Vincent", "Mercier",
)
LAST_NAMES = tuple(dict.fromkeys(LAST_NAMES_EN + LAST_NAMES_DE + LAST_NAMES_FR))

# Email domains per country with weights.
EMAIL_DOMAINS = {
    "US": (("gmail.com", 35), ("yahoo.com", 14), ("hotmail.com", 8), ("outlook.com", 10),
           ("icloud.com", 10), ("aol.com", 4), ("comcast.net", 4), ("proton.me", 2), ("me.com", 3)),
    "CA": (("gmail.com", 40), ("hotmail.com", 15), ("shaw.ca", 10), ("rogers.com", 10), ("yahoo.ca", 8)),
    "GB": (("gmail.com", 35), ("hotmail.co.uk", 20), ("btinternet.com", 12), ("yahoo.co.uk", 10),
           ("outlook.com", 8)),
    "DE": (("gmx.de", 30), ("web.de", 25), ("t-online.de", 15), ("gmail.com", 25)),
    "FR": (("orange.fr", 25), ("free.fr", 20), ("gmail.com", 30), ("laposte.net", 10), ("sfr.fr", 8)),
    "AU": (("gmail.com", 40), ("bigpond.com", 20), ("outlook.com.au", 12), ("yahoo.com.au", 10)),
}

# Cities: (country, city, region, postal template, area codes for NANP else ()).
# Postal templates: '#' a digit, 'L' a letter valid in that country's codes, the rest literal.
CITIES = (
    ("US", "New York", "NY", "100##", ("212", "646", "917")),
    ("US", "Brooklyn", "NY", "112##", ("718", "347")),
    ("US", "Boston", "MA", "021##", ("617", "857")),
    ("US", "Cambridge", "MA", "021##", ("617",)),
    ("US", "Springfield", "MA", "011##", ("413",)),
    ("US", "Hartford", "CT", "061##", ("860",)),
    ("US", "Newark", "NJ", "071##", ("973",)),
    ("US", "Portland", "ME", "041##", ("207",)),
    ("US", "Chicago", "IL", "606##", ("312", "773")),
    ("US", "San Francisco", "CA", "941##", ("415", "628")),
    ("US", "Los Angeles", "CA", "900##", ("213", "310", "323")),
    ("US", "San Diego", "CA", "921##", ("619", "858")),
    ("US", "Seattle", "WA", "981##", ("206",)),
    ("US", "Portland", "OR", "972##", ("503", "971")),
    ("US", "Austin", "TX", "787##", ("512",)),
    ("US", "Houston", "TX", "770##", ("713", "832")),
    ("US", "Dallas", "TX", "752##", ("214", "469")),
    ("US", "Miami", "FL", "331##", ("305", "786")),
    ("US", "Atlanta", "GA", "303##", ("404", "678")),
    ("US", "Denver", "CO", "802##", ("303", "720")),
    ("US", "Phoenix", "AZ", "850##", ("602", "480")),
    ("US", "Philadelphia", "PA", "191##", ("215", "267")),
    ("US", "Minneapolis", "MN", "554##", ("612",)),
    ("US", "Detroit", "MI", "482##", ("313",)),
    ("US", "Nashville", "TN", "372##", ("615",)),
    ("CA", "Toronto", "ON", "M#L #L#", ("416", "647")),
    ("CA", "Ottawa", "ON", "K#L #L#", ("613",)),
    ("CA", "Montreal", "QC", "H#L #L#", ("514",)),
    ("CA", "Vancouver", "BC", "V#L #L#", ("604", "778")),
    ("CA", "Calgary", "AB", "T#L #L#", ("403",)),
    ("CA", "Halifax", "NS", "B#L #L#", ("902",)),
    ("CA", "Winnipeg", "MB", "R#L #L#", ("204",)),
    ("GB", "London", "Greater London", "SW# #LL", ()),
    ("GB", "London", "Greater London", "N# #LL", ()),
    ("GB", "London", "Greater London", "E# #LL", ()),
    ("GB", "Manchester", "Greater Manchester", "M# #LL", ()),
    ("GB", "Birmingham", "West Midlands", "B# #LL", ()),
    ("GB", "Leeds", "West Yorkshire", "LS# #LL", ()),
    ("GB", "Glasgow", "Glasgow City", "G# #LL", ()),
    ("GB", "Edinburgh", "City of Edinburgh", "EH# #LL", ()),
    ("GB", "Bristol", "Bristol", "BS# #LL", ()),
    ("DE", "Berlin", "Berlin", "10###", ()),
    ("DE", "Hamburg", "Hamburg", "20###", ()),
    ("DE", "München", "Bayern", "80###", ()),
    ("DE", "Köln", "Nordrhein-Westfalen", "50###", ()),
    ("DE", "Frankfurt am Main", "Hessen", "60###", ()),
    ("DE", "Stuttgart", "Baden-Württemberg", "70###", ()),
    ("FR", "Paris", "Île-de-France", "7501#", ()),
    ("FR", "Lyon", "Auvergne-Rhône-Alpes", "6900#", ()),
    ("FR", "Marseille", "Provence-Alpes-Côte d'Azur", "130##", ()),
    ("FR", "Toulouse", "Occitanie", "310##", ()),
    ("FR", "Nice", "Provence-Alpes-Côte d'Azur", "06###", ()),
    ("FR", "Bordeaux", "Nouvelle-Aquitaine", "330##", ()),
    ("AU", "Sydney", "NSW", "20##", ()),
    ("AU", "Melbourne", "VIC", "30##", ()),
    ("AU", "Brisbane", "QLD", "40##", ()),
    ("AU", "Perth", "WA", "60##", ()),
    ("AU", "Adelaide", "SA", "50##", ()),
)
# Letters allowed in Canadian (no D F I O Q U) and British inward (no C I K M O V) codes.
POSTAL_LETTERS = {"CA": "ABCEGHJKLMNPRSTVWXYZ", "GB": "ABDEFGHJLNPQRSTUWXYZ"}

# Mobile prefixes (national significant number starts) for non-NANP countries and their lengths.
MOBILE_PREFIXES = {
    "GB": (("77", 8), ("78", 8), ("79", 8), ("75", 8)),
    "DE": (("151", 8), ("152", 8), ("157", 8), ("160", 7), ("170", 7), ("176", 8)),
    "FR": (("6", 8), ("7", 8)),
    "AU": (("4", 8),),
}
COUNTRY_CALLING_CODES = {"US": "1", "CA": "1", "GB": "44", "DE": "49", "FR": "33", "AU": "61"}

STREETS_EN = (
    "Main", "Oak", "Maple", "Cedar", "Pine", "Elm", "Washington", "Lake", "Hill", "Park",
    "Church", "High", "Station", "Victoria", "Mill", "River", "Sunset", "Highland", "Chestnut",
    "Walnut", "Lincoln", "Jefferson", "Franklin", "Madison", "Spring", "Willow", "Meadow", "King",
)
STREET_TYPES_NA = ("St", "Ave", "Rd", "Blvd", "Ln", "Dr", "Ct", "Way", "Pl")
STREET_TYPES_GB = ("Street", "Road", "Lane", "Avenue", "Close", "Gardens", "Way")
STREETS_DE = (
    "Hauptstraße", "Bahnhofstraße", "Gartenstraße", "Schulstraße", "Dorfstraße", "Bergstraße",
    "Lindenstraße", "Kirchstraße", "Goethestraße", "Schillerstraße", "Ringstraße", "Am Markt",
)
STREETS_FR = (
    "Rue de la Paix", "Rue Victor Hugo", "Avenue Jean Jaurès", "Boulevard Voltaire",
    "Rue de la République", "Rue Pasteur", "Rue du Moulin", "Place de la Gare", "Rue des Écoles",
)

# Product taxonomy: (category path, item nouns, low price, high price) in USD.
TAXONOMY = (
    ("Women > Shoes > Boots", ("Ankle Boots", "Chelsea Boots", "Knee Boots"), 60, 240),
    ("Women > Shoes > Sneakers", ("Sneakers", "Trainers", "Slip-ons"), 40, 150),
    ("Women > Clothing > Dresses", ("Midi Dress", "Wrap Dress", "Maxi Dress"), 30, 180),
    ("Women > Clothing > Tops", ("Blouse", "T-Shirt", "Tank Top"), 12, 70),
    ("Women > Accessories > Bags", ("Tote Bag", "Crossbody Bag", "Clutch"), 25, 260),
    ("Men > Shoes > Sneakers", ("Sneakers", "Runners", "Court Shoes"), 45, 160),
    ("Men > Shoes > Boots", ("Work Boots", "Desert Boots", "Hiking Boots"), 70, 250),
    ("Men > Clothing > Shirts", ("Oxford Shirt", "Flannel Shirt", "Polo Shirt"), 20, 90),
    ("Men > Clothing > Jackets", ("Bomber Jacket", "Field Jacket", "Puffer Jacket"), 60, 300),
    ("Men > Accessories", ("Belt", "Wallet", "Cap"), 15, 90),
    ("Kids > Clothing", ("Hoodie", "Pyjamas", "Leggings"), 10, 50),
    ("Kids > Shoes", ("Sneakers", "Sandals", "Rain Boots"), 20, 70),
    ("Home > Kitchen > Cookware", ("Frying Pan", "Saucepan", "Dutch Oven"), 20, 220),
    ("Home > Bedding", ("Duvet Cover", "Pillowcase Set", "Throw"), 25, 180),
    ("Home > Decor > Candles", ("Scented Candle", "Candle Set", "Tealights"), 8, 45),
    ("Outdoor > Camping > Tents", ("2-Person Tent", "Family Tent", "Tarp"), 60, 450),
    ("Outdoor > Clothing > Rain Jackets", ("Rain Jacket", "Shell Jacket", "Poncho"), 40, 260),
    ("Beauty > Skincare", ("Face Cream", "Serum", "Cleanser"), 10, 80),
    ("Beauty > Fragrance", ("Eau de Parfum", "Eau de Toilette", "Body Mist"), 25, 140),
)
PRODUCT_ADJECTIVES = ("Classic", "Essential", "Premium", "Everyday", "Heritage", "Urban", "Lightweight",
                      "Organic", "Vintage", "Modern", "Cozy", "Trail")
PRODUCT_COLOURS = ("Black", "Navy", "Olive", "Sand", "Burgundy", "Grey", "White", "Tan", "Forest Green",
                   "Rust")
MAKERS = ("Northwind", "Acme Outfitters", "Fieldhouse", "Bluebird & Co", "Lumen", "Harbor Goods",
          "Atelier Nord", "Kestrel")
EMAIL_TOPICS = ("new_arrivals", "sale", "shoes", "home", "outdoor", "beauty", "kids", "events")
EMAIL_FREQUENCIES = ("daily", "weekly", "monthly")
SEARCH_TERMS = ("boots", "sneakers", "dress", "jacket", "candle", "tent", "gift", "sale", "black boots",
                "rain jacket", "serum", "kids shoes")
