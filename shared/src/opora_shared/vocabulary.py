"""The fixed vocabulary of the brief: every service and test agrees on these values."""

from enum import StrEnum


class Category(StrEnum):
    """What a ticket is about."""

    EMAIL = "email"
    """Mailboxes, mail delivery, mail clients."""
    PRINTING = "printing"
    """Printers, scanners, MFPs, jams, print queues."""
    ACCOUNTING_SOFTWARE = "accounting_software"
    """1C:Enterprise and other accounting or ERP applications."""
    WORKSTATION = "workstation"
    """PCs, laptops, OS, office software, peripherals."""
    NETWORK = "network"
    """Internet, Wi-Fi, LAN, VPN, DNS."""
    ACCOUNTS_ACCESS = "accounts_access"
    """Passwords, lockouts, new or leaving employees, permissions."""
    SERVER_INFRA = "server_infra"
    """Servers, backups, file shares, virtualisation."""
    SECURITY = "security"
    """Malware, phishing, suspicious logins, leaks."""
    TELEPHONY = "telephony"
    """Phones, PBX, SIP."""
    MONITORING = "monitoring"
    """Machine-generated alerts from monitoring tools only."""
    OTHER = "other"
    """Non-IT or unclear."""


class Kind(StrEnum):
    """What sort of ticket it is."""

    INCIDENT = "incident"
    """Something is broken."""
    REQUEST = "request"
    """Something new or changed."""
    QUESTION = "question"
    """How do I..."""
    ALERT = "alert"
    """Machine-generated."""


class Scope(StrEnum):
    """The ticket judged against its tenant's contract."""

    INCLUDED = "included"
    """Covered by the contract."""
    BILLABLE = "billable"
    """Covered only for an extra charge; needs the client approver's consent."""
    EXCLUDED = "excluded"
    """Not in the contract at all."""
    NEEDS_REVIEW = "needs_review"
    """The classifier is not confident enough; a team lead decides."""


class Priority(StrEnum):
    """Impact x urgency (ITIL)."""

    P1 = "P1"
    """Critical: business stopped, many users, security incident, server or office down."""
    P2 = "P2"
    """High: a department or key person blocked, or a critical alert."""
    P3 = "P3"
    """Normal: one user, a workaround exists."""
    P4 = "P4"
    """Low: questions, planned requests, cosmetic issues."""


class Language(StrEnum):
    """Languages Opora speaks to clients in."""

    RU = "ru"
    EN = "en"


class Channel(StrEnum):
    """How a ticket reached Opora."""

    EMAIL = "email"
    WEB = "web"
    API = "api"
    INTEGRATION = "integration"


class TicketChange(StrEnum):
    """What a TicketUpdated event says happened."""

    ACKNOWLEDGED = "acknowledged"
    REPLIED = "replied"
    CLIENT_REPLIED = "client_replied"
    WAITING_ON_CLIENT = "waiting_on_client"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    PRIORITY_CHANGED = "priority_changed"
    AUTOMATIC_REPLY = "automatic_reply"
    """An auto-reply or bulk mail answered the ticket: recorded, never acknowledged."""
    APPROVED = "approved"
    """The client's approver consented to billable or excluded work."""
    DECLINED = "declined"
    """The client's approver declined it: no work is done."""
    NOTE = "note"
    """An internal note by an engineer: recorded, never sent to the client."""


class TicketStatus(StrEnum):
    """A ticket's status, folded from its events."""

    NEW = "new"
    """Received, not classified yet."""
    OPEN = "open"
    """Classified, nobody has acted yet."""
    IN_PROGRESS = "in_progress"
    """An engineer acknowledged or replied."""
    WAITING_ON_CLIENT = "waiting_on_client"
    """The provider waits for the client; the resolution clock is paused."""
    RESOLVED = "resolved"
    """Done."""


class SlaTarget(StrEnum):
    """The two clocks a contract runs per ticket."""

    FIRST_RESPONSE = "first_response"
    RESOLUTION = "resolution"
