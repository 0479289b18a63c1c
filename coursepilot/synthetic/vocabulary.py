"""Per-theme vocabularies and sentence templates for the synthetic course catalogue.

Each theme has its own topics, skills, outcomes, software and job roles, so that course text carries
the theme (what content-based models pick up) and level cues carry the difficulty.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Theme:
    name: str
    topics: tuple[str, ...]
    skills: tuple[str, ...]
    outcomes: tuple[str, ...]
    software: tuple[str, ...]
    jobs: tuple[str, ...]


THEMES: tuple[Theme, ...] = (
    Theme(
        "Data Analysis",
        (
            "pivot tables",
            "data cleaning",
            "dashboard design",
            "descriptive statistics",
            "SQL queries",
            "data visualisation",
            "spreadsheet modelling",
            "KPI reporting",
            "time series charts",
            "data storytelling",
        ),
        (
            "clean messy spreadsheets",
            "summarise large tables",
            "join data from several sources",
            "build interactive dashboards",
            "write aggregate queries",
            "spot outliers and trends",
        ),
        (
            "present numbers that managers trust",
            "answer business questions with data",
            "automate a weekly sales report",
            "turn raw exports into clear charts",
        ),
        ("Excel", "Power BI", "Tableau", "SQL Server"),
        ("data analyst", "business analyst"),
    ),
    Theme(
        "Machine Learning",
        (
            "linear regression",
            "classification models",
            "feature engineering",
            "model evaluation",
            "neural networks",
            "clustering",
            "gradient boosting",
            "natural language processing",
            "recommendation engines",
            "hyperparameter tuning",
        ),
        (
            "train and validate predictive models",
            "prepare features from raw data",
            "tune model hyperparameters",
            "measure precision and recall",
            "avoid overfitting with cross-validation",
            "deploy a trained model",
        ),
        (
            "predict customer churn",
            "classify support tickets automatically",
            "build a recommender for an online shop",
            "forecast demand from history",
        ),
        ("Python", "scikit-learn", "PyTorch", "Jupyter"),
        ("data scientist", "machine learning engineer"),
    ),
    Theme(
        "Web Development",
        (
            "responsive layouts",
            "JavaScript fundamentals",
            "single page applications",
            "REST APIs",
            "web accessibility",
            "state management",
            "server-side rendering",
            "form validation",
            "web performance",
            "authentication flows",
        ),
        (
            "structure pages with semantic HTML",
            "style components with modern CSS",
            "fetch data from an API",
            "manage application state",
            "write unit tests for components",
            "ship a site to production",
        ),
        (
            "publish a portfolio website",
            "build a booking application",
            "create a fast and accessible online store",
            "connect a front end to a back-end service",
        ),
        ("JavaScript", "React", "HTML and CSS", "Node.js"),
        ("web developer", "front-end engineer"),
    ),
    Theme(
        "Cloud and DevOps",
        (
            "containers",
            "continuous integration",
            "infrastructure as code",
            "cloud networking",
            "monitoring and alerting",
            "serverless functions",
            "container orchestration",
            "release pipelines",
            "cloud cost control",
            "site reliability",
        ),
        (
            "package services into containers",
            "automate builds and deployments",
            "provision servers from code",
            "configure load balancers",
            "set up logs and alerts",
            "scale services under load",
        ),
        (
            "run a web service with zero downtime",
            "cut deployment time from days to minutes",
            "keep cloud bills predictable",
            "recover quickly from outages",
        ),
        ("AWS", "Docker", "Kubernetes", "Terraform"),
        ("DevOps engineer", "system administrator"),
    ),
    Theme(
        "Cybersecurity",
        (
            "network security",
            "threat detection",
            "incident response",
            "penetration testing",
            "identity and access management",
            "security auditing",
            "malware analysis",
            "secure coding",
            "risk assessment",
            "encryption",
        ),
        (
            "analyse suspicious network traffic",
            "harden servers and workstations",
            "investigate security alerts",
            "test systems for known vulnerabilities",
            "manage user permissions safely",
            "write an incident report",
        ),
        (
            "protect a small company network",
            "respond calmly to a data breach",
            "pass an internal security audit",
            "reduce the risk of phishing attacks",
        ),
        ("Linux", "Wireshark", "Splunk", "Metasploit"),
        ("security analyst", "system administrator"),
    ),
    Theme(
        "Project Management",
        (
            "agile planning",
            "stakeholder communication",
            "risk management",
            "scrum ceremonies",
            "project scheduling",
            "budget tracking",
            "team leadership",
            "requirements gathering",
            "kanban boards",
            "project retrospectives",
        ),
        (
            "plan sprints and milestones",
            "estimate effort realistically",
            "track progress against a budget",
            "run effective meetings",
            "manage scope changes",
            "report status to sponsors",
        ),
        (
            "deliver projects on time",
            "keep a distributed team aligned",
            "turn vague requests into clear requirements",
            "recover a project that is running late",
        ),
        ("Jira", "Microsoft Project", "Trello", "Asana"),
        ("project manager", "product owner"),
    ),
    Theme(
        "Digital Marketing",
        (
            "search engine optimisation",
            "social media campaigns",
            "email marketing",
            "content strategy",
            "web analytics",
            "paid advertising",
            "conversion optimisation",
            "brand storytelling",
            "marketing automation",
            "customer segmentation",
        ),
        (
            "plan a content calendar",
            "measure campaign performance",
            "write copy that converts",
            "segment an audience",
            "run A/B tests on landing pages",
            "grow an email list",
        ),
        (
            "bring more visitors to a website",
            "launch a product campaign",
            "lower the cost of acquiring customers",
            "build a recognisable brand online",
        ),
        ("Google Analytics", "HubSpot", "Canva", "Mailchimp"),
        ("marketing specialist", "communication officer"),
    ),
    Theme(
        "Office Productivity",
        (
            "document formatting",
            "shared calendars",
            "online meetings",
            "team sites",
            "email management",
            "file sharing",
            "mail merge",
            "presentation design",
            "collaborative editing",
            "task lists",
        ),
        (
            "format long documents with styles",
            "organise an overflowing inbox",
            "schedule meetings across teams",
            "share files securely with colleagues",
            "co-author documents in real time",
            "design clear slides",
        ),
        (
            "save an hour a day on routine office work",
            "collaborate smoothly with a remote team",
            "produce professional reports quickly",
            "keep team information in one place",
        ),
        ("Word", "Outlook", "Teams", "SharePoint"),
        ("administrative assistant", "human resources officer"),
    ),
    Theme(
        "Finance and Accounting",
        (
            "financial statements",
            "budgeting",
            "cash flow forecasting",
            "bookkeeping",
            "cost accounting",
            "financial modelling",
            "payroll",
            "tax basics",
            "management accounting",
            "audit preparation",
        ),
        (
            "read a balance sheet",
            "reconcile accounts at month end",
            "build a budget model",
            "forecast cash flow",
            "analyse costs by department",
            "prepare documents for auditors",
        ),
        (
            "close the books faster each month",
            "explain results to non-financial managers",
            "plan next year's budget with confidence",
            "keep a small business financially healthy",
        ),
        ("Excel", "SAP", "QuickBooks", "Sage"),
        ("accountant", "financial analyst"),
    ),
    Theme(
        "Graphic Design",
        (
            "colour theory",
            "typography",
            "layout composition",
            "logo design",
            "photo retouching",
            "user interface design",
            "illustration",
            "brand identity",
            "print production",
            "prototyping",
        ),
        (
            "choose fonts and colours that work together",
            "compose balanced layouts",
            "retouch and edit photos",
            "design reusable interface components",
            "prepare files for print",
            "present design ideas to clients",
        ),
        (
            "design a complete brand kit",
            "create a polished portfolio",
            "prototype an app that users understand",
            "produce posters and flyers that stand out",
        ),
        ("Photoshop", "Illustrator", "Figma", "InDesign"),
        ("graphic designer", "marketing specialist"),
    ),
)

LEVELS = ("beginner", "intermediate", "advanced")

TITLE_PREFIX = {
    "beginner": ("Introduction to", "Getting Started with", "Foundations of", "Basics of"),
    "intermediate": ("Practical", "Applied", "Working with", "Hands-on"),
    "advanced": ("Advanced", "Mastering", "Expert", "Deep Dive into"),
}
TITLE_SUFFIX = ("", "", "Essentials", "Workshop", "in Practice", "Bootcamp", "Masterclass", "Lab")

OPENINGS = {
    "beginner": (
        "This beginner course introduces {topic} step by step, and no prior experience is needed.",
        "New to {topic}? This gentle introduction starts from the very basics.",
        "This course is a friendly first look at {topic} for complete beginners.",
    ),
    "intermediate": (
        "This intermediate course builds on the basics of {topic} with practical projects.",
        "Take your knowledge of {topic} further with realistic, hands-on exercises.",
        "This course assumes a working knowledge of {topic} and deepens it through case studies.",
    ),
    "advanced": (
        "This advanced course goes deep into {topic} for experienced practitioners.",
        "Designed for experts, this course covers demanding techniques in {topic} in depth.",
        "This rigorous course examines {topic} at a professional level, including edge cases and trade-offs.",
    ),
}
SKILL_SENTENCES = (
    "You will learn to {skill} using {software}.",
    "Along the way you will {skill} and {skill2}.",
    "Each module shows how to {skill} with clear, worked examples in {software}.",
    "Exercises ask you to {skill}, with feedback on every attempt.",
)
OUTCOME_SENTENCES = (
    "By the end you will be able to {outcome}.",
    "Graduates of this course use it to {outcome}.",
    "The final project asks you to {outcome}.",
)
AUDIENCE_SENTENCES = (
    "It suits any {job} who wants to grow in {theme}.",
    "The course is popular with people working as a {job}.",
    "It was written with the daily work of a {job} in mind.",
)
LEVEL_CLOSINGS = {
    "beginner": (
        "Lessons are short, the pace is relaxed, and every new term is explained.",
        "Quizzes after each lesson help you check your understanding of the fundamentals.",
        "You only need a computer and curiosity to begin.",
    ),
    "intermediate": (
        "You should be comfortable with the fundamentals before you start.",
        "Projects grow in scope from week to week and combine several techniques.",
        "Some prior practice is expected, and the exercises are more open-ended.",
    ),
    "advanced": (
        "Expect a demanding workload, complex assignments and rigorous assessment.",
        "Prerequisites include solid experience and several earlier courses in the field.",
        "The material covers optimisation, architecture and the reasoning behind expert decisions.",
    ),
}
