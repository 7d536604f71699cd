using System.Diagnostics;

namespace ERCache.Redis.Tests.Infrastructure;

/// <summary>
/// Puts the servers the tests start in place on a fresh machine: when redis-server or Garnet is missing (and no
/// <c>ERCACHE_REDIS_SERVER</c> / <c>ERCACHE_GARNET_SERVER</c> points elsewhere), runs the repository's
/// <c>.ci/install-servers</c> once per test run, so the README's test command needs nothing but the .NET SDK.
/// </summary>
internal static class ServerInstaller
{
    private static readonly Lazy<string?> Failure = new(Install, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Installs what is missing, once; throws, with the script's output, when that fails.</summary>
    public static void EnsureInstalled(Func<bool> installed)
    {
        if (installed())
        {
            return;
        }

        if (Failure.Value is { } failure)
        {
            throw new InvalidOperationException(failure);
        }
    }

    private static string? Install()
    {
        string? script = FindScript();
        if (script is null)
        {
            return "the servers are not installed and .ci/install-servers was not found above " + AppContext.BaseDirectory;
        }

        var start = new ProcessStartInfo("bash", $"\"{script}\"") { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(10)))
        {
            process.Kill(entireProcessTree: true);
            return $"{script} did not finish in 10 minutes.";
        }

        return process.ExitCode == 0 ? null : $"{script} failed (exit {process.ExitCode}): {errors.Result}{output.Result}";
    }

    private static string? FindScript()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, ".ci", "install-servers");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }
}
