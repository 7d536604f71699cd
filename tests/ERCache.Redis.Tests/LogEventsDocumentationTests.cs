using System.Reflection;
using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;

namespace ERCache.Redis.Tests;

/// <summary>The README's table of log events (its *Logs* section) lists every event ERCache and ERCache.Redis log, each
/// with its level, and no other: an operator looks an event id up there. Read from the compiled assemblies' logging
/// methods, here because this project references both packages.</summary>
public sealed partial class LogEventsDocumentationTests
{
    [Fact]
    public void The_README_lists_every_logged_event_with_its_level_and_no_other()
    {
        var logged = new[] { typeof(EmbeddingCache).Assembly, typeof(RedisRegionalStore).Assembly }
            .SelectMany(a => a.GetTypes())
            .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.DeclaredOnly))
            .Select(m => m.GetCustomAttribute<LoggerMessageAttribute>())
            .OfType<LoggerMessageAttribute>()
            .Select(a => $"{a.EventId} {a.Level}")
            .ToList();

        Assert.True(logged.Count >= 30, $"only {logged.Count} logging methods found");
        Assert.Equal(logged.Count, logged.Select(e => e.Split(' ')[0]).Distinct().Count()); // every id names one event
        Assert.Equal(logged.Order(StringComparer.Ordinal), DocumentedEvents().Order(StringComparer.Ordinal));
    }

    /// <summary>"id level" of each row of the table in README's *Logs* section.</summary>
    private static List<string> DocumentedEvents()
    {
        string readme = File.ReadAllText(Path.Combine(RepositoryRoot(), "README.md"));
        int start = readme.IndexOf("\n### Logs\n", StringComparison.Ordinal);
        Assert.True(start >= 0, "README has no Logs section");
        int end = readme.IndexOf("\n### ", start + 1, StringComparison.Ordinal);
        return [.. EventRow().Matches(readme[start..end]).Select(m => $"{m.Groups[1].Value} {m.Groups[2].Value}")];
    }

    private static string RepositoryRoot([CallerFilePath] string path = "") =>
        Path.GetFullPath(Path.Combine(Path.GetDirectoryName(path)!, "..", ".."));

    [GeneratedRegex(@"^\| (\d+) \| (\w+) \|", RegexOptions.Multiline)]
    private static partial Regex EventRow();
}
