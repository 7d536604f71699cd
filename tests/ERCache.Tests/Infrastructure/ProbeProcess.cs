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
        try
        {
            var errors = process.StandardError.ReadToEndAsync();
            var output = await process.StandardOutput.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(60));
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
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
