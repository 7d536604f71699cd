using System.Globalization;

namespace ERCache.Replay.Replay;

/// <summary>What happens at a point of the replay's timeline.</summary>
internal enum ReplayEventKind
{
    /// <summary>A model's <c>Version</c> changes: on every host at once, or host by host over a span.</summary>
    Version,

    /// <summary>A host's process restarts: its local tiers are lost (the regional store, if any, is not).</summary>
    Restart,

    /// <summary>A share of the users is deleted region-wide, through one host's <c>RemoveAsync</c>.</summary>
    Delete,

    /// <summary>Every tower call of a model (or of all) that starts in a window fails.</summary>
    Outage,
}

/// <summary>
/// One event of the timeline, written <c>KIND@TIME[+SPAN][:ARG]</c>: <c>version@3h</c>, <c>version@3h+10m</c> (rolled
/// host by host over 10 minutes), <c>version@3h:ctr</c> (one model); <c>restart@3h</c> (host 0),
/// <c>restart@3h:2</c>; <c>delete@3h:1%</c> (a share of the users, chosen by a hash of the id);
/// <c>outage@2h+10m</c>, <c>outage@2h+10m:ctr</c>. Times are from the start of the trace.
/// </summary>
internal sealed record ReplayEvent(ReplayEventKind Kind, TimeSpan At, TimeSpan Span, string? Model, int Host, double Share, string Text)
{
    public const string Syntax = "version@TIME[+SPAN][:MODEL], restart@TIME[:HOST], delete@TIME:SHARE%, outage@TIME+LENGTH[:MODEL]";

    public long AtMs => (long)At.TotalMilliseconds;

    /// <summary>Parses one event; the message of a <see cref="FormatException"/> says what is wrong and shows the syntax.</summary>
    public static ReplayEvent Parse(string text)
    {
        string t = text.Trim();
        int at = t.IndexOf('@');
        if (at <= 0 || !Enum.TryParse<ReplayEventKind>(t[..at], ignoreCase: true, out var kind) || !Enum.IsDefined(kind))
        {
            throw Bad(text, "it does not start with version@, restart@, delete@ or outage@");
        }

        string rest = t[(at + 1)..];
        string? arg = null;
        int colon = rest.IndexOf(':');
        if (colon >= 0)
        {
            arg = rest[(colon + 1)..];
            rest = rest[..colon];
        }

        var span = TimeSpan.Zero;
        int plus = rest.IndexOf('+');
        if (plus >= 0)
        {
            span = Duration(text, rest[(plus + 1)..], "span");
            rest = rest[..plus];
        }

        var time = rest.Trim() == "0" ? TimeSpan.Zero : Duration(text, rest, "time");
        return kind switch
        {
            ReplayEventKind.Version => new(kind, time, span, Name(arg), 0, 0, t),
            ReplayEventKind.Restart when span == TimeSpan.Zero => new(kind, time, span, null, arg is null ? 0 : HostIndex(text, arg), 0, t),
            ReplayEventKind.Delete when span == TimeSpan.Zero && arg is not null => new(kind, time, span, null, 0, ShareOf(text, arg), t),
            ReplayEventKind.Outage when span > TimeSpan.Zero => new(kind, time, span, Name(arg), 0, 0, t),
            ReplayEventKind.Restart => throw Bad(text, "a restart has no span"),
            ReplayEventKind.Delete => throw Bad(text, "a deletion needs a share of the users (delete@TIME:1%) and has no span"),
            _ => throw Bad(text, "an outage needs a length (outage@TIME+LENGTH)"),
        };
    }

    /// <summary>A short label for charts and tables.</summary>
    public string Label => Kind switch
    {
        ReplayEventKind.Version => $"version{(Model is null ? "" : $" of {Model}")}{(Span > TimeSpan.Zero ? $", rolled over {ReplayCommand.Label(Span)}" : "")}",
        ReplayEventKind.Restart => $"restart of host {Host}",
        ReplayEventKind.Delete => FormattableString.Invariant($"deletion of {Share:P1} of users"),
        _ => $"outage{(Model is null ? "" : $" of {Model}")} for {ReplayCommand.Label(Span)}",
    } + $" at {ReplayCommand.Label(At)}";

    private static string? Name(string? arg) => string.IsNullOrWhiteSpace(arg) ? null : arg.Trim();

    private static int HostIndex(string text, string arg) =>
        int.TryParse(arg, NumberStyles.None, CultureInfo.InvariantCulture, out int host) ? host : throw Bad(text, $"'{arg}' is not a host index");

    private static double ShareOf(string text, string arg)
    {
        string v = arg.Trim();
        bool percent = v.EndsWith('%');
        if (double.TryParse(percent ? v[..^1] : v, NumberStyles.Float, CultureInfo.InvariantCulture, out double share))
        {
            share = percent ? share / 100 : share;
            if (share is > 0 and <= 1)
            {
                return share;
            }
        }

        throw Bad(text, $"'{arg}' is not a share of users in (0, 1] or (0%, 100%]");
    }

    private static TimeSpan Duration(string text, string value, string what) =>
        ReplayArguments.TryParseDuration(value, out var d) ? d : throw Bad(text, $"'{value}' is not a {what} (use 90s, 5m, 3h or 00:05:00)");

    private static FormatException Bad(string text, string why) => new($"Event '{text}': {why}. Events are {Syntax}.");
}
