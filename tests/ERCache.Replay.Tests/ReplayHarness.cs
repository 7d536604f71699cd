using System.Text.Json;

namespace ERCache.Replay.Tests;

/// <summary>Runs the harness in-process on a CSV written to a temporary directory and returns its JSON.</summary>
internal sealed class ReplayHarness : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("ercache-replay-").FullName;

    public string Path(string name) => System.IO.Path.Combine(_directory, name);

    public string WriteTrace(string csv, string name = "trace.csv")
    {
        string path = Path(name);
        File.WriteAllText(path, csv.ReplaceLineEndings("\n"));
        return path;
    }

    /// <summary>Runs the command; without a JIT warm-up unless the arguments ask for one (it only affects timing).</summary>
    public static (int ExitCode, string Stdout, string Stderr) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = ReplayCommand.Run(args.Contains("--warmup") ? args : [.. args, "--warmup", "0"], stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>Replays <paramref name="csv"/> with <paramref name="options"/> and returns the JSON document.</summary>
    public JsonElement Replay(string csv, params string[] options) => ReplayWith(["--trace", WriteTrace(csv), .. options]).Json;

    /// <summary>Runs the command with <paramref name="args"/> and <c>--json</c>; checks it succeeded and returns the
    /// JSON document and what it printed.</summary>
    public (JsonElement Json, string Stdout) ReplayWith(params string[] args)
    {
        string json = Path($"result-{Guid.NewGuid():N}.json");
        var (code, stdout, stderr) = Run([.. args, "--json", json]);
        Assert.True(code == 0, $"exit {code}: {stderr}\n{stdout}");
        return (JsonDocument.Parse(File.ReadAllText(json)).RootElement, stdout);
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}

internal static class Json
{
    public static long Long(this JsonElement e, string name) => e.GetProperty(name).GetInt64();

    /// <summary>The six integer counts, in the order the README lists them.</summary>
    public static long[] Counts(this JsonElement e) =>
        new[] { "requests", "directHits", "inferences", "inferenceFailures", "failoverHits", "fallbacks" }
            .Select(n => e.Long(n)).ToArray();
}
