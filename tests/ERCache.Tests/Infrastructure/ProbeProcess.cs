using System.Diagnostics;

namespace ERCache.Tests.Infrastructure;

/// <summary>Runs ERCache.ColdStartProbe (built beside the tests) as a new process: a fresh runtime, whose first requests
/// and first compilations the test host, warm from earlier tests, cannot show.</summary>
internal static class ProbeProcess
{
    /// <summary>The probe's standard output, one entry per non-empty line; fails the test when the probe fails or runs
    /// longer than 60 s (and then stops it).</summary>
    public static async Task<string[]> RunAsync(string arguments)
    {
        var probe = Path.Combine(AppContext.BaseDirectory, "ERCache.ColdStartProbe.dll");
        var start = new ProcessStartInfo("dotnet", $"\"{probe}\" {arguments}") { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(start)!;
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60)); // one bound for the output and the exit
        try
        {
            var errors = process.StandardError.ReadToEndAsync(deadline.Token);
            var output = await process.StandardOutput.ReadToEndAsync(deadline.Token);
            await process.WaitForExitAsync(deadline.Token);
            Assert.True(process.ExitCode == 0, $"the probe failed: {await errors}");
            return output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true); // timed out: leave no probe running behind the test
            }
        }
    }
}
